"""Training memory of SpikingGamma against the sequence length T: online vs BPTT, next to a LIF network.

One training step (forward, backward over the whole sequence, one Adam step) of 24 -> 128 -> 9, batch 16,
dt = 1 ms, on seeded Bernoulli input spikes and random labels; the loss is the cross-entropy of the readout at
every step, summed. Methods (:data:`METHODS`):

- ``gamma-online``: SpikingGamma + GammaReadout, ``online_sequence`` (eligibility traces);
- ``gamma-bptt``: the same network and loss, ``bptt_sequence``;
- ``lif-bptt``: LIF + LI readout of the same size, BPTT through ``sync.run`` with the same per-step loss.

Two kinds of measurement:

- :func:`tensor_memory` (deterministic, in this process): the peak of the bytes of tensor storage that the
  step allocates and holds at once (autograd's saved tensors, eligibility traces, chunk buffers, gradients),
  counted op by op with a ``TorchDispatchMode``, and the peak of the bytes autograd keeps for backward
  (``saved_tensors_hooks``). The same seed gives the same bytes on every machine: the O(T) vs O(1) claim
  itself, without allocator noise.
- :func:`run_worker` (wall clock, not reproducible): time and the increase of the peak resident set
  (:func:`max_rss_mib`) over a warm-up baseline, in a fresh Python process per (method, T)
  (``python -m asyncsnn.studies.gamma_memory``), glibc's mmap threshold pinned (1 MiB by default) so that
  freed tensors leave the resident set.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from asyncsnn import LI, LIF, GammaReadout, Network, SpikingGamma
from asyncsnn.engines import sync
from asyncsnn.training import gamma_fast
from asyncsnn.training.gamma import StepCrossEntropy, bptt_sequence, online_sequence

METHODS = ("gamma-online", "gamma-bptt", "lif-bptt")
#: The benchmark's network, data and optimizer (sizes as in the README).
DEFAULTS: dict[str, Any] = {
    "inputs": 24,
    "hidden": 128,
    "outputs": 9,
    "batch": 16,
    "tau": [5.0, 5.0, 10.0, 20.0],
    "threshold": 0.05,
    "lif_tau": 20.0,
    "dt": 1.0,
    "density": 0.02,
    "lr": 1e-3,
    "seed": 0,
    "warmup_steps": 20,
}


def build(method: str, cfg: dict[str, Any]) -> Network:
    """The network of ``method`` (seeded), sizes from ``cfg``."""
    torch.manual_seed(cfg["seed"])
    n_in, n_hidden, n_out, dt = cfg["inputs"], cfg["hidden"], cfg["outputs"], cfg["dt"]
    if method in ("gamma-online", "gamma-bptt"):
        tau = cfg["tau"]
        return Network(
            nn.Linear(n_in, n_hidden, bias=False),
            SpikingGamma(tau, threshold=cfg["threshold"], dt=dt),
            nn.Linear(n_hidden, n_out, bias=False),
            GammaReadout(tau, dt=dt),
            input_shape=(n_in,),
        )
    if method == "lif-bptt":
        return Network(
            nn.Linear(n_in, n_hidden),
            LIF(tau=cfg["lif_tau"], dt=dt),
            nn.Linear(n_hidden, n_out),
            LI(tau=cfg["lif_tau"], dt=dt),
            input_shape=(n_in,),
        )
    raise ValueError(f"unknown method {method!r}, expected one of {METHODS}")


def make_data(T: int, cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bernoulli input spikes ``[T, B, n_in]`` and random labels ``[B]`` (seeded)."""
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    x = (torch.rand(T, cfg["batch"], cfg["inputs"], generator=g) < cfg["density"]).float()
    labels = torch.randint(0, cfg["outputs"], (cfg["batch"],), generator=g)
    return x, labels


def training_step(
    method: str, net: Network, optimizer: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor
) -> float:
    """Forward + backward over ``x`` with the summed per-step cross-entropy, then one optimizer step."""
    step_loss = StepCrossEntropy(labels, start=0, steps=1)  # the sum of the per-step cross-entropies
    optimizer.zero_grad(set_to_none=True)
    if method == "gamma-online":
        _, loss = online_sequence(net, x, step_loss)
    elif method == "gamma-bptt":
        _, loss = bptt_sequence(net, x, step_loss)
    elif method == "lif-bptt":
        # built as bptt_sequence builds it (one loss per unbound step, stacked and summed), so both BPTT
        # methods carry the same loss overhead
        out = sync.run(net, x).output
        total = torch.stack([step_loss(t, o) for t, o in enumerate(out.unbind(0))]).sum()
        total.backward()
        loss = float(total.detach())
    else:
        raise ValueError(f"unknown method {method!r}, expected one of {METHODS}")
    optimizer.step()
    return loss


def online_path(net: Network) -> str:
    """Which implementation ``online_sequence`` takes for ``net``: closed-form fast path or reference."""
    return "fast" if gamma_fast.supported(net) else "reference"


# ----- deterministic: bytes of tensors ----------------------------------------------------------------------


class TensorBytes(TorchDispatchMode):
    """Counts the bytes of tensor storage allocated while active and still alive; keeps the peak.

    Every op's outputs are registered once per storage (views and in-place results share it) with a weak
    reference whose callback subtracts the bytes when the storage is freed. Storages that existed before
    (parameters, the input) are never counted. Inside, ``saved_tensors_hooks`` also track the storages
    autograd keeps for backward (those allocated inside only): :attr:`saved_peak`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.saved = self.saved_peak = 0
        self._refs: dict[int, weakref.ref] = {}  # data_ptr -> weak reference to the storage
        self._saved_uses: dict[int, int] = {}  # data_ptr -> saved tensors using that storage

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # an output sharing an input's storage is a view or an in-place result: nothing new allocated
        given = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if _is_tensor(t)}
        for t in tree_flatten(out)[0]:
            if _is_tensor(t) and t.untyped_storage().data_ptr() not in given:
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key, size = storage.data_ptr(), storage.nbytes()
        if size == 0 or (key in self._refs and self._refs[key]() is not None):
            return
        self._refs[key] = weakref.ref(storage, lambda ref, key=key, size=size: self._free(ref, key, size))
        self.live += size
        self.peak = max(self.peak, self.live)

    def _free(self, ref: weakref.ref, key: int, size: int) -> None:
        self.live -= size
        if self._refs.get(key) is ref:
            del self._refs[key]

    def _pack(self, t: torch.Tensor) -> object:
        key = t.untyped_storage().data_ptr()
        if key not in self._refs:  # a parameter or the input: exists whatever the method
            return t
        return _Saved(t, self, key, t.untyped_storage().nbytes())

    @staticmethod
    def _unpack(packed: object) -> torch.Tensor:
        return packed.tensor if isinstance(packed, _Saved) else packed

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._hooks.__exit__(*exc)


def _is_tensor(value: object) -> bool:
    return isinstance(value, torch.Tensor)


class _Saved:
    """A tensor autograd keeps for backward; counted while the graph holds it."""

    def __init__(self, tensor: torch.Tensor, counter: TensorBytes, key: int, size: int) -> None:
        self.tensor, self._counter, self._key, self._size = tensor, counter, key, size
        uses = counter._saved_uses.get(key, 0)
        if uses == 0:
            counter.saved += size
            counter.saved_peak = max(counter.saved_peak, counter.saved)
        counter._saved_uses[key] = uses + 1

    def __del__(self) -> None:
        uses = self._counter._saved_uses[self._key] - 1
        self._counter._saved_uses[self._key] = uses
        if uses == 0:
            self._counter.saved -= self._size


def tensor_memory(method: str, T: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Deterministic memory of one training step at ``T`` (after a warm-up step, as :func:`measure`).

    Returns ``peak_tensor_bytes`` (storage the step allocates and holds at once, its returned readout buffer
    of ``T x B x outputs`` floats included), ``saved_for_backward_bytes`` (peak of what autograd keeps for
    backward) and the step's ``loss``.
    """
    net = build(method, cfg)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    x, labels = make_data(T, cfg)
    training_step(method, net, optimizer, x[: min(cfg["warmup_steps"], T)], labels)  # optimizer state
    counter = TensorBytes()
    with counter:
        loss = training_step(method, net, optimizer, x, labels)
    return {
        "peak_tensor_bytes": counter.peak,
        "saved_for_backward_bytes": counter.saved_peak,
        "loss": loss,
    }


# ----- wall clock: time and resident set, in fresh processes -----------------------------------------------


def max_rss_mib() -> float:
    """Peak resident set of this process so far, MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``, the peak of this program's own address space (``ru_maxrss``
    also keeps the peak of the parent it was forked from, which would hide a worker's growth behind a large
    parent). Elsewhere ``ru_maxrss`` (bytes on macOS, KiB otherwise).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def measure(method: str, T: int, cfg: dict[str, Any], repeats: int = 1) -> dict[str, Any]:
    """Time and memory of ``repeats`` training steps at ``T`` in this process.

    Meant for a fresh process: the memory figures are only meaningful when nothing else ran before. A warm-up
    step on the first ``warmup_steps`` steps creates the optimizer state and torch's lazy buffers; the
    baseline is ``ru_maxrss`` after it, the peak ``ru_maxrss`` after the first full step.
    """
    net = build(method, cfg)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    x, labels = make_data(T, cfg)
    before_warmup = max_rss_mib()
    warmup_loss = training_step(method, net, optimizer, x[: min(cfg["warmup_steps"], T)], labels)
    baseline = max_rss_mib()
    times, losses = [], []
    for i in range(max(1, repeats)):
        t0 = time.perf_counter()
        losses.append(training_step(method, net, optimizer, x, labels))
        times.append(time.perf_counter() - t0)
        if i == 0:
            peak = max_rss_mib()
    seconds = statistics.median(times)
    return {
        "method": method,
        "T": T,
        "batch": cfg["batch"],
        "seconds_per_training_step": seconds,
        "seconds_all": times,
        "time_steps_per_s": T / seconds,
        "rss_before_warmup_mib": before_warmup,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": peak,
        "training_memory_mib": peak - baseline,
        "warmup_loss": warmup_loss,
        "loss": losses[0],
        "parameters": sum(p.numel() for p in net.parameters()),
        "online_path": online_path(net) if method == "gamma-online" else None,
        "threads": torch.get_num_threads(),
    }


def run_worker(
    method: str, T: int, cfg: dict[str, Any], *, threads: int = 1, repeats: int = 1, mmap_threshold: int = 0
) -> dict[str, Any]:
    """Run :func:`measure` in a fresh Python process and return its result.

    ``mmap_threshold > 0`` fixes glibc's mmap threshold in that process (``MALLOC_MMAP_THRESHOLD_``).
    """
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if mmap_threshold > 0:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    spec = json.dumps({"method": method, "T": T, "cfg": cfg, "threads": threads, "repeats": repeats})
    proc = subprocess.run(
        [sys.executable, "-m", __name__, spec], capture_output=True, text=True, env=env, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {method} T={T} failed (exit {proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_both(
    method: str,
    T: int,
    cfg: dict[str, Any],
    *,
    threads: int = 1,
    repeats: int = 3,
    mmap_threshold: int = 2**20,
) -> dict[str, Any]:
    """Memory (fixed mmap threshold, one step) and time (default allocator, ``repeats`` steps) of one case.

    A fixed low threshold makes every large allocation fault in fresh pages, which slows BPTT down, so time
    comes from a second process with glibc's defaults (whose resident set, reported as ``default_malloc_*``,
    overstates the live memory by up to 2x). ``mmap_threshold=0``: one default process for both.
    """
    timing = run_worker(method, T, cfg, threads=threads, repeats=repeats)
    memory = timing
    if mmap_threshold > 0:
        memory = run_worker(method, T, cfg, threads=threads, mmap_threshold=mmap_threshold)
    r = dict(timing)
    for key in ("rss_before_warmup_mib", "rss_baseline_mib", "rss_peak_mib", "training_memory_mib"):
        r[key] = memory[key]
    r["default_malloc_training_memory_mib"] = timing["training_memory_mib"]
    r["default_malloc_rss_peak_mib"] = timing["rss_peak_mib"]
    r["memory_process_seconds"] = memory["seconds_all"]
    r["memory_process_loss"] = memory["loss"]
    return r


def _worker(spec_json: str) -> None:
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    print(json.dumps(measure(spec["method"], spec["T"], spec["cfg"], spec["repeats"])))


if __name__ == "__main__":
    _worker(sys.argv[1])
