"""SpikingGamma on two synthetic timing tasks, next to a LIF network of the same size trained with BPTT.

1. Delay learning: the input is a Poisson pulse train (1 channel); the target is the same train smoothed by
   an exponential kernel and delayed by D (5, 20 and 50 ms, 1 ms steps; ``asyncsnn.data.delay_task``).
   Reported per D: the normalised error (test MSE / variance of the test target) and the latency of the
   output's peak response to a single input pulse (``pulse_response_peak`` on the response to a pulse at
   10 ms minus the response to silence), for both models.
2. Coincidence detection: classify the relative delay between two input channels (interaural-time-difference
   style; ``asyncsnn.data.coincidence_task``) from spike timing alone. Both channels carry the same number of
   pulses in every class. Prediction: argmax of the readout averaged over a late window; test accuracy.
3. Sparsity: hidden spikes per neuron per second on the test data, for every model and task.

SpikingGamma: input -> Linear (no bias) -> SpikingGamma -> Linear (no bias) -> GammaReadout, trained *online*
(``asyncsnn.training.gamma.online_sequence``: a loss at every step, parameters updated every
``update_every`` steps while the sequence streams, memory independent of its length; with one hidden layer
and fixed time constants its gradient equals BPTT's). LIF: input -> Linear -> LIF -> Linear -> LI (membrane
readout), trained with BPTT through ``asyncsnn.engines.sync.run`` on the same loss; a small grid of membrane
time constants and learning rates is tried and the best on a validation set is reported.

Run by ``asyncsnn reproduce gamma`` (:mod:`asyncsnn.studies.gamma`) and ``experiments/gamma_tasks.py``.

Latency convention: the test pulse lies in the bin that starts at 10 ms, and outputs are sampled at bin ends,
so even the target itself peaks at D + 1 ms by ``pulse_response_peak``; the table shows it ("target peak").

Why these SpikingGamma hyperparameters (``GAMMA_DELAY`` / ``GAMMA_COINCIDENCE``; found by hand on seed 0):

- Bucket 0's time constant equals the target's smoothing (``tau_0 = smooth_tau`` = 2 ms): the input
  memory's bucket 0 is then the smoothed input itself, and a hidden neuron's sigma-delta code decays like
  the target between its spikes. The other 19 buckets are short (1 ms): each adds
  ``dt / (1 - exp(-dt / tau))`` = 1.58 ms of delay with little blur, so the cascade is a fine delay line.
  Input memory and hidden buckets both use these time constants, so input -> readout reaches about
  2 * 19 * 1.58 = 60 ms. Long equal buckets (e.g. 8 x 5 ms) also reach 50 ms, but blur a delayed pulse so
  much that the MSE-trained output peaks 3-5 ms late at D = 20 and 50 ms.
- The smoothing is short (2 ms) for the same reason: the MSE-optimal fit of a sharp-onset exponential by
  blurred delayed copies peaks after the onset, the more so the longer the exponential: at D = 50 ms the
  output peaked 3 ms after D with 3 ms smoothing, 4 ms with 5 ms, and 2 ms with 2 ms (seeds 0 and 1).
- The threshold is large against the signal (a pulse drives a hidden neuron by about 2 * theta): a neuron
  answers an input pulse with about one spike, whose decoded value 2 * theta * exp(-t / tau_0) is the
  smoothed pulse itself. Far fewer spikes than with a small threshold, and no slew-rate lag (a sigma-delta
  neuron adds at most 2 * theta per step, so a small threshold smears sharp onsets over many steps).
- Fixed time constants: with online training a trainable tau only gets time-local credit.
- The hidden bucket weights start as a bank of delays (neuron j reads input bucket j mod K) instead of the
  library default (every neuron reads bucket 0); the delay task's hidden weights start at 1 (its input is
  positive, and a neuron with a negative weight would stay silent under the ReLU for good). Per-neuron bucket
  weights (the library default) keep the closed-form fast path of online training.
- Coincidence: 11 short buckets (fine relative delays up to ~17 ms between the two channels) then 4, 8 and
  16 ms buckets, a longer memory over which the readout gathers the evidence of several pulse pairs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from asyncsnn import LI, LIF, GammaReadout, Network, SpikingGamma
from asyncsnn.data.temporal import coincidence_task, delay_task, pulse_response_peak
from asyncsnn.engines import sync
from asyncsnn.plots import _pyplot, matplotlib_available
from asyncsnn.training.gamma import StepCrossEntropy, online_sequence

DT = 1.0  # ms, both tasks

#: Delay task data.
DELAY = dict(
    delays=(5.0, 20.0, 50.0), rate_hz=20.0, smooth_tau=2.0, train_ms=500.0, test_ms=400.0, test_n=256,
    val_n=128, pulse_ms=10.0, pulse_len_ms=150.0, skip_ms=60.0,
)  # fmt: skip
#: Coincidence task data: class c has channel 1 lag channel 0 by delays[c] ms.
COINCIDENCE = dict(
    delays=(-8.0, -4.0, 0.0, 4.0, 8.0), duration_ms=80.0, jitter_ms=1.0, n_pulses=4, window_ms=30.0,
    train_n=4096, val_n=500, test_n=1000,
)  # fmt: skip
#: SpikingGamma for the delay task (tau_0 is set to the target's smoothing at run time).
GAMMA_DELAY = dict(
    hidden=32, tau_rest=1.0, buckets=20, threshold=0.5, lr=0.01, batch=32, sequences=60, update_every=10,
)  # fmt: skip
#: SpikingGamma for the coincidence task.
GAMMA_COINCIDENCE = dict(
    hidden=32, tau=(2.0,) + (1.0,) * 11 + (4.0, 8.0, 16.0), threshold=0.5, lr=0.01, batch=64, epochs=6,
    update_every=20,
)  # fmt: skip
#: LIF + BPTT: the grid of (membrane tau, lr) tried, best on validation kept. The delay task's LI readout
#: takes the target's smoothing as its tau; the coincidence task's uses ``out_tau``.
LIF_DELAY = dict(hidden=32, taus=(5.0, 20.0), lrs=(1e-2, 3e-2), batch=32, iterations=500, seq_ms=300.0)
LIF_COINCIDENCE = dict(hidden=32, taus=(2.0, 5.0, 10.0), lrs=(1e-2, 3e-2), batch=64, epochs=15, out_tau=10.0)

#: The configuration groups, in the order :func:`configs` returns them.
GROUPS = ("delay", "coincidence", "gamma_delay", "gamma_coincidence", "lif_delay", "lif_coincidence")
#: A smoke run (< 1 min): tiny networks, data and training; its numbers mean nothing.
SMOKE = dict(
    delay=dict(delays=(5.0, 20.0), test_n=16, val_n=16, train_ms=100.0, test_ms=150.0),
    coincidence=dict(train_n=128, val_n=64, test_n=64),
    gamma_delay=dict(hidden=8, buckets=8, sequences=2, batch=4),
    gamma_coincidence=dict(hidden=8, tau=(2.0, 1.0, 1.0, 4.0), epochs=1, batch=32),
    lif_delay=dict(hidden=8, taus=(10.0,), lrs=(1e-2,), iterations=2, batch=4, seq_ms=100.0),
    lif_coincidence=dict(hidden=8, taus=(10.0,), lrs=(1e-2,), epochs=1, batch=32),
)


def configs(overrides: dict[str, dict] | None = None) -> dict[str, dict]:
    """Copies of the task configurations (:data:`GROUPS`), each updated by ``overrides[group]``."""
    defaults = (DELAY, COINCIDENCE, GAMMA_DELAY, GAMMA_COINCIDENCE, LIF_DELAY, LIF_COINCIDENCE)
    overrides = overrides or {}
    unknown = set(overrides) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown task configuration group(s) {sorted(unknown)}; allowed: {GROUPS}")
    return {name: {**cfg, **overrides.get(name, {})} for name, cfg in zip(GROUPS, defaults)}


# ----- models -----------------------------------------------------------------------------------------------


def gamma_network(
    channels: int, hidden: int, outputs: int, tau: tuple[float, ...], threshold: float, *, seed: int,
    positive_input: bool,
) -> Network:  # fmt: skip
    """Input -> SpikingGamma (``hidden``) -> GammaReadout (``outputs``), bucket weights a bank of delays."""
    torch.manual_seed(seed)
    net = Network(
        nn.Linear(channels, hidden, bias=False),
        SpikingGamma(tau=tau, threshold=threshold, dt=DT),
        nn.Linear(hidden, outputs, bias=False),
        GammaReadout(tau=tau, dt=DT),
        input_shape=(channels,),
    )
    pop = net.layers[0].population
    K = pop.buckets
    with torch.no_grad():
        bank = torch.zeros(K, hidden)
        bank[torch.arange(hidden) % K, torch.arange(hidden)] = 1.0
        pop.bucket_weight.copy_(bank)
        if positive_input:
            net.layers[0].synapse[0].weight.fill_(1.0)
    return net


def lif_network(
    channels: int, hidden: int, outputs: int, tau: float, out_tau: float, *, seed: int
) -> Network:
    """Input -> LIF (``hidden``, membrane ``tau``) -> LI readout (``out_tau``), biases in the synapses."""
    torch.manual_seed(seed)
    return Network(
        nn.Linear(channels, hidden),
        LIF(tau=tau, threshold=1.0, dt=DT),
        nn.Linear(hidden, outputs),
        LI(tau=out_tau, dt=DT),
        input_shape=(channels,),
    )


# ----- losses -----------------------------------------------------------------------------------------------


class StepMSE:
    """Squared error of the readout at every step ``t >= start``, averaged over steps, batch and outputs.

    A per-step loss for ``online_sequence``, with the closed-form chunk gradient its fast path uses."""

    def __init__(self, target: torch.Tensor, start: int = 0) -> None:
        self.target, self.start = target, start
        self.scale = 1.0 / max(1, target.shape[0] - start)

    def __call__(self, t: int, out: torch.Tensor) -> torch.Tensor | None:
        if t < self.start:
            return None
        return ((out - self.target[t]) ** 2).mean() * self.scale

    def chunk_value_and_grad(self, first: int, out: torch.Tensor) -> tuple[float, torch.Tensor]:
        C = out.shape[0]
        counted = (torch.arange(first, first + C) >= self.start).to(out.dtype)[:, None, None]
        diff = (out - self.target[first : first + C]) * counted
        n = out.shape[1] * out.shape[2]
        return float((diff**2).sum()) * self.scale / n, diff * (2 * self.scale / n)


def window_ce(out: torch.Tensor, labels: torch.Tensor, start: int) -> torch.Tensor:
    """Cross-entropy at every step ``t >= start`` of ``out`` ``[T, B, n]``, averaged (as StepCrossEntropy)."""
    window = out[start:]
    return nn.functional.cross_entropy(window.reshape(-1, window.shape[-1]), labels.repeat(window.shape[0]))


# ----- training ---------------------------------------------------------------------------------------------


def cosine(optimizer: torch.optim.Optimizer, updates: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, updates) / updates))
    )


class _Scheduled:
    """An optimizer whose ``step`` also steps an lr schedule (``online_sequence`` steps it mid-sequence)."""

    def __init__(self, optimizer: torch.optim.Optimizer, updates: int) -> None:
        self.optimizer, self.schedule = optimizer, cosine(optimizer, updates)

    def step(self) -> None:
        self.optimizer.step()
        self.schedule.step()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()


def train_gamma_online(
    net: Network,
    batches: list[tuple[torch.Tensor, object]],
    loss_for: Callable[[object], Callable],
    *,
    lr: float,
    update_every: int,
    desc: str,
    progress: bool = True,
) -> list[float]:
    """Train ``net`` online on ``batches`` of ``(x [T, B, C], target)``: ``loss_for(target)`` is the per-step
    loss; Adam steps every ``update_every`` steps while each sequence streams (cosine lr over all updates).
    Returns the loss of every sequence."""
    updates = sum(x.shape[0] // update_every for x, _ in batches)
    optimizer = _Scheduled(torch.optim.Adam(net.parameters(), lr=lr), max(1, updates))
    losses = []
    for x, target in tqdm(batches, desc=desc, leave=False, disable=None if progress else True):
        optimizer.zero_grad()  # a sequence's leftover steps (T % update_every) are not applied
        _, loss = online_sequence(net, x, loss_for(target), optimizer=optimizer, update_every=update_every)
        losses.append(loss)
    return losses


def train_bptt(
    net: Network,
    batches: list[tuple[torch.Tensor, object]],
    loss_fn: Callable[[torch.Tensor, object], torch.Tensor],
    *,
    lr: float,
    desc: str,
    progress: bool = True,
) -> list[float]:
    """Train ``net`` with BPTT through ``sync.run``: one Adam step per batch, cosine lr."""
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    schedule = cosine(optimizer, len(batches))
    losses = []
    for x, target in tqdm(batches, desc=desc, leave=False, disable=None if progress else True):
        optimizer.zero_grad()
        loss = loss_fn(sync.run(net, x).output, target)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    return losses


# ----- evaluation -------------------------------------------------------------------------------------------


def _curve(values: torch.Tensor) -> list[float]:
    """A curve for the JSON file, rounded to 4 decimals."""
    return [round(v, 4) for v in values.tolist()]


@torch.no_grad()
def forward(net: Network, x: torch.Tensor, chunk: int = 256) -> tuple[torch.Tensor, float]:
    """Readout ``[T, B, n]`` and hidden spikes per neuron per second, over ``x`` ``[T, B, C]``."""
    outs, spikes = [], 0.0
    for i in range(0, x.shape[1], chunk):
        run = sync.run(net, x[:, i : i + chunk])
        outs.append(run.output)
        spikes += float(run.records.spikes[0].sum())
    seconds = x.shape[0] * DT / 1000.0
    return torch.cat(outs, 1), spikes / net.layers[0].size / x.shape[1] / seconds


@torch.no_grad()
def pulse_response(net: Network, pulse_ms: float, length_ms: float) -> torch.Tensor:
    """Readout ``[T]`` for one input pulse at ``pulse_ms`` minus the readout for silence."""
    T = int(round(length_ms / DT))
    x = torch.zeros(T, 2, 1)
    x[int(pulse_ms / DT), 0, 0] = 1.0
    out = sync.run(net, x).output[:, :, 0]
    return out[:, 0] - out[:, 1]


def delay_metrics(net: Network, data: dict, delay: float, cfg: dict) -> dict:
    """Normalised error, spikes per neuron per second and pulse latency on the test set of one delay."""
    x, y = data["test"]
    skip = int(cfg["skip_ms"] / DT)  # the first steps: the memory is filling (both models alike)
    out, rate = forward(net, x)
    err = float(((out[skip:] - y[skip:]) ** 2).mean() / y[skip:].var())
    response = pulse_response(net, cfg["pulse_ms"], cfg["pulse_len_ms"])
    latency = pulse_response_peak(response, DT, cfg["pulse_ms"])
    return {
        "normalised_error": err,
        "spikes_per_neuron_per_s": rate,
        "peak_latency_ms": latency,
        "latency_error_ms": abs(latency - delay) if math.isfinite(latency) else float("nan"),
        "pulse_response": _curve(response),
        "example_output": _curve(out[:, 0, 0]),
    }


@torch.no_grad()
def coincidence_metrics(net: Network, x: torch.Tensor, labels: torch.Tensor, start: int) -> dict:
    out, rate = forward(net, x)
    predicted = out[start:].mean(0).argmax(1)
    return {"accuracy": float((predicted == labels).float().mean()), "spikes_per_neuron_per_s": rate}


# ----- the two tasks ----------------------------------------------------------------------------------------


def delay_data(delay: float, cfg: dict, n: int, duration_ms: float, seed: int):
    return delay_task(
        n, dt=DT, duration_ms=duration_ms, delay_ms=delay, rate_hz=cfg["rate_hz"],
        smooth_tau_ms=cfg["smooth_tau"], seed=seed,
    )  # fmt: skip


def run_delay(
    cfg: dict, gcfg: dict, lcfg: dict, seed: int, *, progress: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Both models on every delay of ``cfg``; returns the results per delay (keys ``f"{D:g}"``)."""
    tau = (cfg["smooth_tau"],) + (gcfg["tau_rest"],) * (gcfg["buckets"] - 1)
    results = {}
    for delay in cfg["delays"]:
        log(f"delay D = {delay:g} ms")
        data = {
            "test": delay_data(delay, cfg, cfg["test_n"], cfg["test_ms"], 10_000 + seed),
            "val": delay_data(delay, cfg, cfg["val_n"], cfg["test_ms"], 20_000 + seed),
        }
        pulse_target = torch.zeros(int(cfg["pulse_len_ms"] / DT))
        t = (torch.arange(pulse_target.numel()) + 1) * DT  # bin ends
        arrival = cfg["pulse_ms"] + delay
        pulse_target = torch.where(t > arrival, torch.exp(-(t - arrival) / cfg["smooth_tau"]), 0.0)
        target_latency = pulse_response_peak(pulse_target, DT, cfg["pulse_ms"])
        row: dict = {
            "target_peak_latency_ms": target_latency,
            "example_target": _curve(data["test"][1][:, 0, 0]),
            "example_input": _curve(data["test"][0][:, 0, 0]),
            "pulse_target": _curve(pulse_target),
        }

        # SpikingGamma, online
        t0 = time.perf_counter()
        net = gamma_network(1, gcfg["hidden"], 1, tau, gcfg["threshold"], seed=seed, positive_input=True)
        batches = [
            delay_data(delay, cfg, gcfg["batch"], cfg["train_ms"], seed * 1000 + i)
            for i in range(gcfg["sequences"])
        ]
        losses = train_gamma_online(
            net, batches, StepMSE, lr=gcfg["lr"], update_every=gcfg["update_every"],
            desc=f"gamma online D={delay:g}", progress=progress,
        )  # fmt: skip
        gamma = delay_metrics(net, data, delay, cfg)
        gamma["wall_s"] = time.perf_counter() - t0
        gamma["train_loss_last"] = losses[-1]
        row["gamma"] = gamma
        log(
            f"   SpikingGamma: error {gamma['normalised_error']:.3f}, peak latency "
            f"{gamma['peak_latency_ms']:g} ms, {gamma['spikes_per_neuron_per_s']:.1f} spikes/neuron/s, "
            f"{gamma['wall_s']:.0f} s",
        )

        # LIF, BPTT: grid over (tau, lr), selected on the validation set
        t0 = time.perf_counter()
        lif_batches = [
            delay_data(delay, cfg, lcfg["batch"], lcfg["seq_ms"], seed * 1000 + 500 + i)
            for i in range(lcfg["iterations"])
        ]
        best = None
        grid = []
        for tau_m in lcfg["taus"]:
            for lr in lcfg["lrs"]:
                lif = lif_network(1, lcfg["hidden"], 1, tau_m, cfg["smooth_tau"], seed=seed)
                train_bptt(
                    lif, lif_batches, lambda out, y: ((out - y) ** 2).mean(), lr=lr,
                    desc=f"LIF BPTT D={delay:g} tau={tau_m:g} lr={lr:g}", progress=progress,
                )  # fmt: skip
                out, _ = forward(lif, data["val"][0])
                skip = int(cfg["skip_ms"] / DT)
                yv = data["val"][1]
                val = float(((out[skip:] - yv[skip:]) ** 2).mean() / yv[skip:].var())
                grid.append({"tau": tau_m, "lr": lr, "val_normalised_error": val})
                if best is None or val < best[0]:
                    best = (val, lif, tau_m, lr)
        lif_result = delay_metrics(best[1], data, delay, cfg)
        lif_result.update(wall_s=time.perf_counter() - t0, tau=best[2], lr=best[3], grid=grid)
        row["lif"] = lif_result
        results[f"{delay:g}"] = row
        log(
            f"   LIF: error {lif_result['normalised_error']:.3f} (tau {best[2]:g} ms, lr {best[3]:g}), peak "
            f"latency {lif_result['peak_latency_ms']:g} ms, {lif_result['spikes_per_neuron_per_s']:.1f} "
            f"spikes/neuron/s, {lif_result['wall_s']:.0f} s",
        )
    return results


def run_coincidence(
    cfg: dict, gcfg: dict, lcfg: dict, seed: int, *, progress: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Both models on the coincidence task; test accuracy and sparsity of each, the LIF grid's validation."""
    classes = len(cfg["delays"])

    def data(n: int, s: int):
        return coincidence_task(
            n, dt=DT, delays_ms=cfg["delays"], duration_ms=cfg["duration_ms"], jitter_ms=cfg["jitter_ms"],
            n_pulses=cfg["n_pulses"], seed=s,
        )  # fmt: skip

    x_train, y_train = data(cfg["train_n"], 30_000 + seed)
    x_val, y_val = data(cfg["val_n"], 40_000 + seed)
    x_test, y_test = data(cfg["test_n"], 50_000 + seed)
    T = x_train.shape[0]
    start = T - int(round(cfg["window_ms"] / DT))

    def batches(batch: int, epochs: int, s: int) -> list:
        g = torch.Generator().manual_seed(s)
        out = []
        for _ in range(epochs):
            order = torch.randperm(x_train.shape[1], generator=g)
            for i in range(0, len(order) - batch + 1, batch):
                idx = order[i : i + batch]
                out.append((x_train[:, idx], y_train[idx]))
        return out

    log("coincidence detection")
    t0 = time.perf_counter()
    net = gamma_network(
        2, gcfg["hidden"], classes, gcfg["tau"], gcfg["threshold"], seed=seed, positive_input=False
    )
    train_gamma_online(
        net, batches(gcfg["batch"], gcfg["epochs"], seed), lambda y: StepCrossEntropy(y, start, T - start),
        lr=gcfg["lr"], update_every=gcfg["update_every"], desc="gamma online coincidence", progress=progress,
    )  # fmt: skip
    gamma = coincidence_metrics(net, x_test, y_test, start)
    gamma["wall_s"] = time.perf_counter() - t0
    log(
        f"   SpikingGamma: accuracy {gamma['accuracy']:.3f}, "
        f"{gamma['spikes_per_neuron_per_s']:.1f} spikes/neuron/s, {gamma['wall_s']:.0f} s",
    )

    t0 = time.perf_counter()
    best, grid = None, []
    for tau_m in lcfg["taus"]:
        for lr in lcfg["lrs"]:
            lif = lif_network(2, lcfg["hidden"], classes, tau_m, lcfg["out_tau"], seed=seed)
            train_bptt(
                lif, batches(lcfg["batch"], lcfg["epochs"], seed), lambda out, y: window_ce(out, y, start),
                lr=lr, desc=f"LIF BPTT coincidence tau={tau_m:g} lr={lr:g}", progress=progress,
            )  # fmt: skip
            val = coincidence_metrics(lif, x_val, y_val, start)["accuracy"]
            grid.append({"tau": tau_m, "lr": lr, "val_accuracy": val})
            if best is None or val > best[0]:
                best = (val, lif, tau_m, lr)
    lif_result = coincidence_metrics(best[1], x_test, y_test, start)
    lif_result.update(wall_s=time.perf_counter() - t0, tau=best[2], lr=best[3], grid=grid)
    log(
        f"   LIF: accuracy {lif_result['accuracy']:.3f} (tau {best[2]:g} ms, lr {best[3]:g}), "
        f"{lif_result['spikes_per_neuron_per_s']:.1f} spikes/neuron/s, {lif_result['wall_s']:.0f} s",
    )
    return {"gamma": gamma, "lif": lif_result, "chance": 1.0 / classes, "window_start_step": start, "T": T}


# ----- figure ---------------------------------------------------------------------------------------------


def plot_delay(delay: dict, cfg: dict, path: Path) -> bool:
    """Targets vs outputs on a test sample and responses to one pulse, per delay; False without matplotlib."""
    if not matplotlib_available():
        return False
    plt = _pyplot()
    n = len(delay)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 6), squeeze=False)
    for i, (d, r) in enumerate(delay.items()):
        ax = axes[0, i]
        steps = min(len(r["example_target"]), 300)
        t = torch.arange(1, steps + 1) * DT
        pulses = [k * DT for k, v in enumerate(r["example_input"][:steps]) if v > 0]
        ax.plot(t, r["example_target"][:steps], "k", lw=2, label="target")
        ax.plot(t, r["gamma"]["example_output"][:steps], "C0", label="SpikingGamma (online)")
        ax.plot(t, r["lif"]["example_output"][:steps], "C1", alpha=0.8, label="LIF (BPTT)")
        ax.plot(pulses, [-0.15] * len(pulses), "|", color="k", ms=8)
        ax.set(title=f"D = {d} ms: test sample", xlabel="time (ms)")
        ax = axes[1, i]
        t = torch.arange(1, len(r["pulse_target"]) + 1) * DT - cfg["pulse_ms"]
        ax.plot(t, r["pulse_target"], "k", lw=2, label="target")
        ax.plot(t, r["gamma"]["pulse_response"], "C0", label="SpikingGamma")
        ax.plot(t, r["lif"]["pulse_response"], "C1", label="LIF")
        ax.axvline(float(d), color="gray", ls=":")
        ax.set(title=f"response to one pulse (D = {d} ms)", xlabel="time after the pulse (ms)")
        if i == 0:
            axes[0, 0].legend(fontsize=8)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
