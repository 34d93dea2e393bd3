"""SpikingGamma on a real temporal dataset: JapaneseVowels (UCR/UEA: 12 channels, 270/370 series, 9 speakers).

Each 12-channel frame is held for ``series_step`` ms and sigma-delta encoded into 24 ON/OFF spike channels in
physical time (``asyncsnn.data.series_to_spikes``). The pieces here train one configuration
(:func:`train_config`), run a trained model at another time step (:func:`at_dt`) and time an epoch of online
vs BPTT training (:func:`epoch_time_ratio`); ``asyncsnn reproduce gamma`` and ``experiments/gamma_vowels.py``
put them together.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from asyncsnn.config import TrainConfig
from asyncsnn.engines import sync
from asyncsnn.network import Network
from asyncsnn.training.tasks import encoder_for, load_split
from asyncsnn.training.trainer import evaluate, prepare, train, train_epoch

#: The SpikingGamma model: one hidden layer of 128, four buckets reaching ~80 ms back.
GAMMA = dict(
    model="gamma", dataset="japanese-vowels", architecture="128", gamma_tau="20,10,20,40",
    gamma_threshold=0.25, series_step=10.0, input_threshold=0.25, input_tau=10.0, loss_start=50.0, lr=0.01,
    lr_schedule="cosine", batch_size=16, epochs=12,
)  # fmt: skip
#: The same model far outside the sigma-delta regime (a neuron fires up to ~ once per 1 ms step).
OUTSIDE = dict(gamma_tau="5,5,10,20", gamma_threshold=0.05)
#: The LIF baseline: same layer sizes, membrane readout, BPTT with the atan surrogate.
LIF = dict(
    model="lif", dataset="japanese-vowels", architecture="128", readout="membrane", tau=20.0, threshold=1.0,
    series_step=10.0, input_threshold=0.25, input_tau=10.0, lr=0.005, lr_schedule="cosine", batch_size=16,
    epochs=12,
)  # fmt: skip


def train_config(
    values: dict[str, Any],
    out: Path,
    data_dir: str | None,
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train one configuration (checkpoints under ``out``); its test metrics, the median training time per
    epoch (wall clock) and the trained network."""
    config = TrainConfig.from_dict({**values, "data_dir": data_dir, "out": str(out)})
    result = train(config, progress=progress, log=lambda line: log("    " + line))
    return {
        "config": config.to_dict(),
        "test": result.test_metrics,
        "seconds_per_epoch": statistics.median(h["train_seconds"] for h in result.history),
        "network": result.network,
    }


def at_dt(
    network: Network, values: dict[str, Any], data_dir: str | None, dt: float, *, progress: bool = True
) -> dict[str, float]:
    """Test metrics of a trained network run at step ``dt`` ms (inputs re-encoded at that step, the same
    physical time); the network is set back to the step of ``values`` afterwards."""
    config = TrainConfig.from_dict({**values, "data_dir": data_dir, "dt": dt})
    network.set_dt(dt)
    data = load_split(config, "test")
    if config.test_limit is not None:  # the test set the model was scored on in training
        data = dataclasses.replace(data, images=data.images[: config.test_limit],
                                   labels=data.labels[: config.test_limit])  # fmt: skip
    metrics = evaluate(
        network, data, encoder_for(config, data), batch_size=128, desc=f"test at dt={dt:g}",
        loss_start=config.loss_start, run=lambda net, x, labels=None: sync.run(net, x), progress=progress,
    )  # fmt: skip
    network.set_dt(values.get("dt", 1.0))
    return metrics


def epoch_time_ratio(values: dict[str, Any], data_dir: str | None, repeats: int = 3) -> dict[str, Any]:
    """Seconds per training epoch of the same model online and with BPTT, interleaved in one process so that
    both see the same machine load; medians over ``repeats``."""
    experiments, seconds = {}, {"online": [], "bptt": []}
    for mode in seconds:
        config = TrainConfig.from_dict({**values, "training": mode, "data_dir": data_dir, "out": "unused"})
        experiments[mode] = prepare(config)
    for _ in range(repeats):
        for mode, exp in experiments.items():
            optimizer = torch.optim.Adam(exp.network.parameters(), lr=exp.config.lr)
            t0 = time.perf_counter()
            train_epoch(exp, optimizer, 1, progress=False)
            seconds[mode].append(time.perf_counter() - t0)
    online, bptt = statistics.median(seconds["online"]), statistics.median(seconds["bptt"])
    return {"online_s": online, "bptt_s": bptt, "ratio": online / bptt, "all": seconds}
