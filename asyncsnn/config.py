"""Training configuration: one validated dataclass, loadable from TOML or YAML and overridable by flags."""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from asyncsnn.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

READOUTS = ("spikes", "membrane")
LR_SCHEDULES = ("constant", "cosine")
ENGINES = ("sync", "async")
MODELS = ("lif", "gamma")
TRAINING_MODES = ("bptt", "online")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Times (``dt``, ``tau``) are in milliseconds.

    ``architecture`` lists the hidden layers between input and output, separated by ``-``:
    ``256`` is a dense LIF layer of 256 neurons; ``12c5`` a 5x5 convolution with 12 channels (padding 0);
    ``ap2`` a 2x2 average pooling. The output layer (one neuron per class) is added automatically.
    Example: ``"12c5-ap2-32c5-ap2"`` or ``"256"``.

    ``model="gamma"`` builds SpikingGamma hidden layers and a GammaReadout (DESIGN section 7) and trains them
    with ``training="bptt"`` or ``"online"`` on a cross-entropy at every step from ``loss_start`` ms on; the
    class is the arg-max of the readout averaged over that window. ``gamma_tau`` lists the bucket time
    constants in ms (``"5,5,10,20"``). Time series (``dataset="japanese-vowels"``) hold each sample for
    ``series_step`` ms and are sigma-delta encoded (``input_threshold``, ``input_tau``) into ON/OFF spikes.
    Neuromorphic datasets (``"nmnist"``, ``"shd"``, ``"dvsgesture"``) are counted into ``num_steps`` equal
    frames over the dataset's fixed duration (320 ms, 1.4 s, 6 s); a ``dt`` equal to one frame's length keeps
    ``tau`` physical.

    ``lr_schedule="cosine"`` anneals the learning rate from ``lr`` towards 0 over ``epochs`` (epoch ``e`` uses
    ``lr * (1 + cos(pi * (e - 1) / epochs)) / 2``).

    ``device``: where the network, the batches and the engine work live: ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"auto"`` (cuda when available). Shuffling and encoding draw from CPU generators on any
    device, so the same seed gives the same batches; under ``torchrun``, ``"cuda"`` gives each process
    ``cuda:LOCAL_RANK``.
    """

    def learning_rate(self, epoch: int) -> float:
        """The learning rate used during ``epoch`` (1-based)."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr

    model: str = "lif"
    training: str = "bptt"
    dataset: str = "builtin"
    data_dir: str | None = None
    encoder: str = "rate"
    num_steps: int = 25
    gain: float = 1.0
    architecture: str = "256"
    readout: str = "spikes"
    tau: float = 10.0
    threshold: float = 1.0
    reset: str = "zero"
    surrogate: str = "atan"
    dt: float = 1.0
    bias: bool = True
    gamma_tau: str = "5,5,10,20"
    gamma_threshold: float = 0.05
    gamma_adapt: float = 0.0
    per_synapse: bool = False
    trainable_tau: bool = False
    update_every: int | None = None
    loss_start: float = 0.0
    series_step: float = 10.0
    input_threshold: float = 0.25
    input_tau: float = 10.0
    engine: str = "sync"
    group_size: int = 1
    scheduler: str = "random"
    input_mode: str = "prioritized"
    refractory_dropout: float = 0.0
    sync_threshold: int = 0
    max_steps: int | None = None
    stop_after_output: int | None = None
    carry_over: bool = False
    epochs: int = 5
    lr: float = 1e-3
    lr_schedule: str = "constant"
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"
    train_limit: int | None = None
    test_limit: int | None = None
    out: str = "runs/train"

    def __post_init__(self) -> None:
        self.validate()

    # ----- validation ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first bad field, its value and what is allowed."""
        from asyncsnn.data import DATASETS, ENCODERS
        from asyncsnn.neurons import RESETS, SURROGATES
        from asyncsnn.training.tasks import TEMPORAL_DATASETS

        _choice("model", self.model, MODELS)
        _choice("training", self.training, TRAINING_MODES)
        _choice("dataset", self.dataset, tuple(DATASETS) + TEMPORAL_DATASETS)
        _choice("encoder", self.encoder, tuple(ENCODERS))
        _choice("readout", self.readout, READOUTS)
        _choice("reset", self.reset, RESETS)
        _choice("surrogate", self.surrogate, SURROGATES)
        _choice("engine", self.engine, ENGINES)
        if not isinstance(self.bias, bool):
            raise ConfigError(f"bias: must be true or false, got {self.bias!r}")
        try:
            self.async_config()
        except ValueError as err:
            raise ConfigError(str(err)) from None
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("num_steps", "epochs", "batch_size"):
            _positive_int(name, getattr(self, name))
        for name in ("train_limit", "test_limit"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        positive = ("gain", "tau", "threshold", "dt", "lr", "gamma_threshold", "series_step",
                    "input_threshold", "input_tau")  # fmt: skip
        for name in positive:
            _positive_float(name, getattr(self, name))
        if self.update_every is not None:
            _positive_int("update_every", self.update_every)
        for name in ("per_synapse", "trainable_tau"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: must be true or false, got {getattr(self, name)!r}")
        for name in ("gamma_adapt", "loss_start"):
            _non_negative_float(name, getattr(self, name))
        self.bucket_taus()
        if self.model == "lif" and self.training == "online":
            raise ConfigError("training: 'online' is for model 'gamma'; LIF networks train with 'bptt'")
        if self.model == "gamma" and self.engine != "sync":
            raise ConfigError(
                "engine: SpikingGamma networks run on the time-stepped engine; use engine 'sync'"
            )
        if self.dataset in TEMPORAL_DATASETS and self.engine != "sync":
            raise ConfigError(f"engine: {self.dataset} is trained with the time-stepped engine; use 'sync'")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed: must be a non-negative integer, got {self.seed!r}")
        from asyncsnn.training.device import check_device_name

        check_device_name(self.device)  # the spelling only: the hardware is checked when a run starts
        if not isinstance(self.out, str) or not self.out:
            raise ConfigError(f"out: must be a folder path, got {self.out!r}")
        from asyncsnn.training.builder import parse_architecture

        parse_architecture(self.architecture)

    def bucket_taus(self) -> tuple[float, ...]:
        """``gamma_tau`` as a tuple of positive floats (ms)."""
        try:
            taus = tuple(float(t) for t in str(self.gamma_tau).replace(" ", "").split(",") if t)
        except ValueError:
            taus = ()
        if not taus or not all(math.isfinite(t) and t > 0 for t in taus):
            raise ConfigError(
                "gamma_tau: must list positive bucket time constants in ms, like '5,5,10,20'; "
                f"got {self.gamma_tau!r}"
            )
        return taus

    def async_config(self):
        """The :class:`~asyncsnn.engines.async_config.AsyncConfig` of the asynchronous-engine fields."""
        from asyncsnn.engines.async_config import AsyncConfig

        return AsyncConfig(
            group_size=self.group_size, scheduler=self.scheduler, input_mode=self.input_mode,
            refractory_dropout=self.refractory_dropout, sync_threshold=self.sync_threshold,
            max_steps=self.max_steps, stop_after_output=self.stop_after_output, carry_over=self.carry_over,
            seed=self.seed,
        )  # fmt: skip

    # ----- conversion ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys are an error that lists the valid ones."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown configuration key(s): {', '.join(unknown)}; valid keys: "
                + ", ".join(cls.field_names())
            )
        values = dict(values)
        if isinstance(values.get("gamma_tau"), (list, tuple)):  # TOML/YAML arrays: gamma_tau = [5, 10, 20]
            values["gamma_tau"] = ",".join(str(t) for t in values["gamma_tau"])
        for f in fields(cls):  # TOML/YAML give ints for floats like "lr = 1"
            if f.name in values and f.type == "float" and isinstance(values[f.name], int):
                values[f.name] = float(values[f.name])
        return cls(**values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file into a flat mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(
                    "YAML config files need PyYAML: pip install 'asyncsnn[yaml]' (or use TOML)"
                ) from None
            data = yaml.safe_load(path.read_text()) or {}
        else:
            raise ConfigError(f"config file {path}: use a .toml, .yaml or .yml file")
    except (tomllib.TOMLDecodeError, ValueError) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"config file {path} could not be parsed: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping of keys to values")
    return data


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not allowed; choose one of {', '.join(allowed)}")


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}: must be a positive integer, got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name}: must be a positive finite number, got {value!r}")


def _non_negative_float(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(f"{name}: must be a finite number >= 0, got {value!r}")
