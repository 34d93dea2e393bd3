"""Configuration of the asynchronous engine: one validated dataclass (DESIGN section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from asyncsnn.engines.schedulers import Scheduler, get_scheduler

INPUT_MODES = ("prioritized", "scheduled")
REFRACTORY_CURRENT = ("hold", "integrate")


@dataclass
class AsyncConfig:
    """How the asynchronous engine runs a network.

    Attributes:
        group_size: F, the most pending events delivered per sample per micro-step.
        scheduler: ``"random"``, ``"momentum"``, ``"fifo"``, ``"layer"``, or a :class:`Scheduler` instance.
        input_mode: ``"prioritized"`` delivers each input frame whole at the start of the frame (as in the
            paper; it takes no micro-step); ``"scheduled"`` puts input events in the queue, where they compete
            with network events.
        refractory: at most one spike per neuron per frame.
        refractory_dropout: probability that a refractory neuron may fire again when it receives current
            (training only; 0 in eval mode).
        refractory_current: what a refractory neuron does with current: ``"hold"`` (default, as in the public
            reference implementation: the current is discarded, the membrane stays at its post-reset value
            until the next frame) or ``"integrate"`` (integrated, but it cannot fire this frame).
        sync_threshold: a neuron may fire only after it has received at least this many input events in the
            frame (true per-target counts, an event of amplitude k counting k). 0 = off.
        max_steps: at most this many micro-steps per frame (None = until the queue is empty).
        stop_after_output: a sample's run ends this many micro-steps after its first output spike
            (None = run all frames). ``0`` stops at the first output spike.
        carry_over: undelivered events at a forced stop (``max_steps``) are carried into the next frame
            (True) or dropped (False, default; reported in the records).
        seed: seed of the engine's random numbers (random keys, refractory dropout).
    """

    group_size: int = 1
    scheduler: str | Scheduler = "random"
    input_mode: str = "prioritized"
    refractory: bool = True
    refractory_dropout: float = 0.0
    refractory_current: str = "hold"
    sync_threshold: int = 0
    max_steps: int | None = None
    stop_after_output: int | None = None
    carry_over: bool = False
    seed: int = 0
    _scheduler: Scheduler = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _is_int(self.group_size) or self.group_size < 1:
            raise ValueError(f"group_size: must be an integer >= 1, got {self.group_size!r}")
        self._scheduler = get_scheduler(self.scheduler)
        if self.input_mode not in INPUT_MODES:
            raise ValueError(f"input_mode: {self.input_mode!r} is not allowed; choose one of {INPUT_MODES}")
        if self.refractory_current not in REFRACTORY_CURRENT:
            raise ValueError(
                f"refractory_current: {self.refractory_current!r} is not allowed; "
                f"choose one of {REFRACTORY_CURRENT}"
            )
        if not isinstance(self.refractory_dropout, (int, float)) or not 0 <= self.refractory_dropout < 1:
            raise ValueError(f"refractory_dropout: must be in [0, 1), got {self.refractory_dropout!r}")
        if self.refractory_dropout > 0 and not self.refractory:
            raise ValueError("refractory_dropout needs refractory=True")
        if not _is_int(self.sync_threshold) or self.sync_threshold < 0:
            raise ValueError(f"sync_threshold: must be an integer >= 0, got {self.sync_threshold!r}")
        if self.max_steps is not None and (not _is_int(self.max_steps) or self.max_steps < 1):
            raise ValueError(f"max_steps: must be None or an integer >= 1, got {self.max_steps!r}")
        if self.stop_after_output is not None and (
            not _is_int(self.stop_after_output) or self.stop_after_output < 0
        ):
            raise ValueError(
                f"stop_after_output: must be None or an integer >= 0, got {self.stop_after_output!r}"
            )
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {self.seed!r}")

    @property
    def scheduler_instance(self) -> Scheduler:
        return self._scheduler


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
