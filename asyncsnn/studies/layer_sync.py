"""The layer-synchronization study (Koopman et al., arXiv 2408.05098): ``asyncsnn reproduce layer-sync``.

For each network (FC and CNN on N-MNIST-style saccade events of MNIST, FC on rate-coded MNIST) and seed:

- a model trained layer-synchronously (BPTT) is run layer-synchronously, and asynchronously with the
  ``random`` and ``momentum`` schedulers at every F, without and with the synchronization threshold;
- for every scheduler and F, a model trained asynchronously through that schedule ("unlayered backprop", the
  same data, epochs and optimiser) is run asynchronously at the same scheduler and F.

Every asynchronous cell is evaluated on the test set under three stop rules: ``quiescent`` (all frames, each
to an empty queue; class = most output spikes), ``first-output`` (the sample stops at its first output spike;
class = that neuron) and ``k-after`` (it stops k micro-steps after its first output spike). The engine runs
each rule as its own run, so spikes, SynOps and micro-steps count only the work done before the stop.

The synchronization threshold n is calibrated per network on training samples (never the test set): the
smallest n in ``SYNC_CANDIDATES`` that brings the layer-trained model, run asynchronously (momentum, F = 1),
to within 1 percentage point of its layer-synchronous accuracy (or the most accurate n if none does).

Outputs: ``results.csv`` (one row per network, seed, model, run and stop rule), ``report.md``, figures and
``provenance.json``. Trained models and finished cells are kept under ``models/`` and ``cells/``: rerunning
the same command after an interruption continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from asyncsnn.config import TrainConfig
from asyncsnn.data import load_dataset
from asyncsnn.data.packed import EventView, PackedFrames
from asyncsnn.engines import async_, sync
from asyncsnn.engines.async_config import AsyncConfig
from asyncsnn.errors import ConfigError
from asyncsnn.metrics import MetricAccumulator
from asyncsnn.studies import layer_sync_report
from asyncsnn.studies.report import provenance, write_csv, write_json
from asyncsnn.training.checkpoint import load_checkpoint, save_checkpoint
from asyncsnn.training.tasks import SpikeDataset, SpikeSequenceEncoder, encoder_for
from asyncsnn.training.trainer import Experiment, evaluate, network_for, subset, train

STOP_RULES = ("quiescent", "first-output", "k-after")
SYNC_CANDIDATES = (1, 2, 4, 8, 16, 32)
_MOVABLE = ("out", "data_dir", "device")  # a study folder may be moved, and its data with it; any device
#: metrics copied from an evaluation summary into a CSV row (with ``_std`` and ``_missing`` where present)
ROW_METRICS = (
    "accuracy", "spikes", "synops", "spike_density", "input_events", "micro_steps", "micro_steps_to_decision",
    "micro_steps_to_first_output", "micro_steps_to_first_correct", "spikes_before_first_output",
    "spikes_before_first_correct", "dropped_events", "frames_to_first_output",
)  # fmt: skip


@dataclass(frozen=True)
class NetworkSpec:
    """One network of the study: a name, a description and its :class:`TrainConfig` fields."""

    name: str
    label: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Preset:
    """What a preset runs. ``train_limit`` / ``test_limit`` cap the samples (None = the whole split)."""

    name: str
    networks: tuple[NetworkSpec, ...]
    group_sizes: tuple[int, ...] = (1, 4, 16, 64)
    schedulers: tuple[str, ...] = ("random", "momentum")
    seeds: int = 1
    k_after: int = 20
    calibration_samples: int = 1000
    expected: str = ""
    batch_size: int = 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_COMMON = dict(dataset="mnist", readout="spikes", threshold=1.0, bias=True, lr_schedule="cosine")
_SACCADE = dict(_COMMON, encoder="saccade", num_steps=30, tau=20.0)
_RATE = dict(_COMMON, encoder="rate", num_steps=25, tau=10.0)


def _networks(fc: dict, cnn: dict, rate: dict) -> tuple[NetworkSpec, ...]:
    return (
        NetworkSpec("fc-saccade", "FC 2312-128-10, N-MNIST-style saccade events (2 x 34 x 34, T = 30)",
                    dict(_SACCADE, architecture="128", **fc)),
        NetworkSpec("cnn-saccade", "CNN 2x34x34-ap2-8c4-ap2-16c3-10, saccade events (T = 30)",
                    dict(_SACCADE, architecture="ap2-8c4-ap2-16c3", **cnn)),
        NetworkSpec("fc-rate", "FC 784-256-10, rate-coded MNIST (T = 25)",
                    dict(_RATE, architecture="256", **rate)),
    )  # fmt: skip


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick",
        _networks(
            fc=dict(epochs=2, batch_size=64, lr=3e-3, train_limit=3000, test_limit=5000),
            cnn=dict(epochs=1, batch_size=32, lr=3e-3, train_limit=1500, test_limit=2000),
            rate=dict(epochs=2, batch_size=64, lr=3e-3, train_limit=3000, test_limit=5000),
        ),
        expected="about 15 minutes on 2 CPU cores",
    ),
    "full": Preset(
        "full",
        _networks(
            fc=dict(epochs=3, batch_size=64, lr=1e-3, train_limit=20000, test_limit=None),
            cnn=dict(epochs=2, batch_size=32, lr=1e-3, train_limit=5000, test_limit=None),
            rate=dict(epochs=3, batch_size=64, lr=1e-3, train_limit=20000, test_limit=None),
        ),
        seeds=3,
        expected="an estimated 1.5 hours per seed, 4-4.5 hours for its 3 seeds, on 2 CPU cores; resumable",
    ),
}


# ----- cells ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Model:
    """A trained model of the study: layer-synchronous (``scheduler`` None) or unlayered at a schedule."""

    network: str
    seed: int
    scheduler: str | None = None
    group_size: int | None = None

    @property
    def training(self) -> str:
        return "layer-sync" if self.scheduler is None else "unlayered"

    @property
    def key(self) -> str:
        if self.scheduler is None:
            return f"{self.network}-layer-s{self.seed}"
        return f"{self.network}-async-{self.scheduler}-F{self.group_size}-s{self.seed}"


@dataclass(frozen=True)
class Cell:
    """One evaluation: a model run by an engine (``scheduler`` None = layer-synchronous) under a stop rule."""

    model: Model
    scheduler: str | None = None
    group_size: int | None = None
    sync_threshold: int = 0
    stop_rule: str = "quiescent"

    @property
    def key(self) -> str:
        if self.scheduler is None:
            return f"{self.model.key}--sync"
        return (
            f"{self.model.key}--{self.scheduler}-F{self.group_size}-n{self.sync_threshold}-{self.stop_rule}"
        )


def plan(preset: Preset, network: str, seed: int, sync_threshold: int) -> tuple[list[Model], list[Cell]]:
    """The models to train and the cells to evaluate for one network and seed."""
    layer = Model(network, seed)
    models, cells = [layer], [Cell(layer)]
    for scheduler in preset.schedulers:
        for F in preset.group_sizes:
            unlayered = Model(network, seed, scheduler, F)
            models.append(unlayered)
            for rule in STOP_RULES:
                cells.append(Cell(layer, scheduler, F, 0, rule))
                cells.append(Cell(layer, scheduler, F, sync_threshold, rule))
                cells.append(Cell(unlayered, scheduler, F, 0, rule))
    return models, cells


# ----- data ----------------------------------------------------------------------------------------------
@dataclass
class StudyData:
    """The training and test data of one network, with its encoder (saccade events pre-encoded once)."""

    train_set: Any
    test_set: Any
    encoder: Any


def load_data(config: TrainConfig, progress: bool, cache: dict) -> StudyData:
    """Load (and for deterministic encoders pre-encode) the splits of ``config``; shared through ``cache``."""
    key = (config.dataset, config.encoder, config.num_steps, config.train_limit, config.test_limit)
    if key in cache:
        return cache[key]
    splits = {}
    for split, limit in (("train", config.train_limit), ("test", config.test_limit)):
        ds = load_dataset(config.dataset, split, config.data_dir)
        if limit is not None and limit < len(ds):
            ds = dataclasses.replace(ds, images=ds.images[:limit], labels=ds.labels[:limit])
        splits[split] = ds
    encoder = encoder_for(config, splits["train"])
    if config.encoder == "saccade":  # deterministic and costly: encode once, reuse for every model and epoch
        for split, ds in splits.items():
            packed = PackedFrames.encode(
                len(ds), lambda s, ds=ds: encoder(ds.images[s]), progress=progress,
                desc=f"encoding {config.dataset}/{split} ({config.encoder})",
            )  # fmt: skip
            splits[split] = SpikeDataset(ds.name, split, packed, ds.labels, ds.n_classes, ds.classes)
        encoder = SpikeSequenceEncoder(config.num_steps, encoder.input_shape, name=config.encoder)
    cache[key] = StudyData(splits["train"], splits["test"], encoder)
    return cache[key]


# ----- the study ------------------------------------------------------------------------------------------
@dataclass
class Study:
    """Runs a preset into ``out``: trains what is missing, evaluates what is missing, writes the report."""

    preset: Preset
    out: Path
    data_dir: str | None
    seeds: list[int]
    progress: bool = True
    log: Callable[[str], None] = functools.partial(print, flush=True)
    _data: dict = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)

    def config(self, spec: NetworkSpec, model: Model) -> TrainConfig:
        values = dict(
            spec.config, seed=model.seed, data_dir=self.data_dir, out=str(self.out / "models" / model.key)
        )
        if model.scheduler is not None:
            values.update(engine="async", scheduler=model.scheduler, group_size=model.group_size)
        return TrainConfig.from_dict(values)

    def say(self, text: str) -> None:
        elapsed = time.perf_counter() - self._t0
        self.log(f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {text}")

    def trained(self, spec: NetworkSpec, model: Model) -> torch.nn.Module:
        """The trained network of ``model``: loaded when its run finished, else trained (or resumed)."""
        config = self.config(spec, model)
        data = load_data(config, self.progress, self._data)
        ckpt = Path(config.out) / "checkpoint.pt"
        if ckpt.is_file():
            saved = load_checkpoint(ckpt)
            same = all(saved["config"].get(k) == v for k, v in config.to_dict().items() if k not in _MOVABLE)
            if saved["epoch"] >= config.epochs and same:
                network = network_for(config, tuple(saved["input_shape"]), int(saved["n_classes"]))
                network.load_state_dict(saved["model"])
                return network
        self.say(f"training {model.key} ({model.training})")
        exp = Experiment(config, data.train_set, data.test_set, data.encoder,
                         network_for(config, data.encoder.input_shape, data.train_set.n_classes))  # fmt: skip
        result = train(
            config, resume=ckpt.is_file(), progress=self.progress, prepared=exp,
            log=lambda line: self.say("  " + line), test_each_epoch=False,
        )  # fmt: skip
        return result.network

    def evaluate(
        self, spec: NetworkSpec, cell: Cell, network, samples: slice | None = None
    ) -> dict[str, Any]:
        """Evaluate one cell on the test set (or on ``samples`` of the training set, for calibration)."""
        config = self.config(spec, cell.model)
        data = load_data(config, self.progress, self._data)
        dataset = data.test_set if samples is None else subset(data.train_set, samples)
        encoder = data.encoder
        if cell.scheduler is not None and isinstance(dataset.images, PackedFrames):
            # the asynchronous engine takes event lists: skip building and rescanning dense frames
            dataset = dataclasses.replace(dataset, images=EventView(dataset.images))
            encoder = _as_is
        if cell.scheduler is None:
            run = lambda net, x, labels=None: sync.run(net, x)  # noqa: E731
        else:
            stop = {"quiescent": None, "first-output": 0, "k-after": self.preset.k_after}[cell.stop_rule]
            engine = AsyncConfig(
                group_size=cell.group_size, scheduler=cell.scheduler, sync_threshold=cell.sync_threshold,
                stop_after_output=stop, seed=cell.model.seed,
            )  # fmt: skip
            run = lambda net, x, labels=None: async_.run(net, x, engine, labels=labels)  # noqa: E731
        acc = MetricAccumulator()
        summary = evaluate(
            network, dataset, encoder, batch_size=self.preset.batch_size, seed=cell.model.seed,
            progress=self.progress, desc=cell.key, run=run, accumulator=acc,
        )  # fmt: skip
        return cell_row(cell, summary, acc)

    def run(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        prov = provenance("layer-sync", self.preset.name, self.preset.to_dict(), self.seeds)
        prov["data_dir"] = self.data_dir
        self.say(f"layer-sync study, preset {self.preset.name} ({self.preset.expected}) -> {self.out}")
        rows: list[dict[str, Any]] = []
        calibration: dict[str, Any] = {}
        for seed in self.seeds:
            for spec in self.preset.networks:
                layer = self.trained(spec, Model(spec.name, seed))
                n, scores = self.calibrate(spec, seed, layer)
                calibration[f"{spec.name}-s{seed}"] = {"sync_threshold": n, "accuracy_by_n": scores}
                models, cells = plan(self.preset, spec.name, seed, n)
                networks = {models[0]: layer}
                for i, cell in enumerate(cells, 1):
                    if cell.model not in networks:
                        networks[cell.model] = self.trained(spec, cell.model)
                    net = networks[cell.model]
                    row = self.cached(cell.key, lambda s=spec, c=cell, m=net: self.evaluate(s, c, m))
                    rows.append({"network": spec.name, **row})
                    if row.get("_fresh"):
                        self.say(f"{spec.name} seed {seed} [{i}/{len(cells)}] {_describe(row)}")
                    row.pop("_fresh", None)
        prov["sync_threshold_calibration"] = calibration
        prov["seconds"] = round(time.perf_counter() - self._t0, 1)
        csv_rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
        write_csv(csv_rows, self.out / "results.csv")
        write_json(prov, self.out / "provenance.json")
        report = layer_sync_report.write(self.out, self.preset, rows, prov)
        self.say(f"done: {self.out / 'results.csv'}, {report}")
        return report

    def calibrate(self, spec: NetworkSpec, seed: int, layer) -> tuple[int, dict[str, float]]:
        """The synchronization threshold for ``spec`` (see the module docstring), on training samples."""
        samples = slice(0, self.preset.calibration_samples)
        model = Model(spec.name, seed)
        key = f"calibration-{spec.name}-s{seed}"
        row = self.cached(key, lambda: self.evaluate(spec, Cell(model), layer, samples))
        target = row["accuracy"] - 0.01
        scores: dict[str, float] = {}
        for n in SYNC_CANDIDATES:
            cell = Cell(model, "momentum", 1, n, "quiescent")
            got = self.cached(f"{key}-n{n}", lambda cell=cell: self.evaluate(spec, cell, layer, samples))
            scores[str(n)] = got["accuracy"]
            if got["accuracy"] >= target:
                return n, scores
        return int(max(scores, key=lambda k: scores[k])), scores

    def cached(self, key: str, compute: Callable[[], dict]) -> dict[str, Any]:
        """``compute()`` once per key; the result is kept under ``cells/`` so an interrupted study resumes."""
        path = self.out / "cells" / f"{key}.pt"
        if path.is_file():
            return torch.load(path, weights_only=False)
        row = compute()
        save_checkpoint(row, path)
        return {**row, "_fresh": True}


def cell_row(cell: Cell, summary: dict[str, float], acc: MetricAccumulator) -> dict[str, Any]:
    """The CSV row of one evaluated cell (plus ``_decision``: per-sample micro-steps to decision)."""
    model = cell.model
    row: dict[str, Any] = {
        "seed": model.seed, "training": model.training, "train_scheduler": model.scheduler or "",
        "train_F": model.group_size or "", "engine": "sync" if cell.scheduler is None else "async",
        "scheduler": cell.scheduler or "", "F": cell.group_size or "", "sync_threshold": cell.sync_threshold,
        "stop_rule": cell.stop_rule, "samples": int(summary["samples"]),
    }  # fmt: skip
    for name in ROW_METRICS:
        for suffix in ("", "_std", "_missing"):
            if name + suffix in summary:
                row[name + suffix] = summary[name + suffix]
    layers = sorted(k for k in summary if k.startswith("spikes_layer") and not k.endswith("_std"))
    for k in layers:
        row[k] = summary[k]
    if "micro_steps_to_decision" in acc.values:
        steps = torch.cat(acc.values["micro_steps_to_decision"])
        steps = steps[~torch.isnan(steps)]
        if steps.numel():
            q = torch.quantile(steps, torch.tensor([0.5, 0.9], dtype=steps.dtype))
            row["micro_steps_to_decision_median"] = float(q[0])
            row["micro_steps_to_decision_p90"] = float(q[1])
        row["_decision"] = steps.to(torch.float32)
    return row


def _as_is(batch, generator=None):
    return batch


def _describe(row: dict[str, Any]) -> str:
    what = f"{row['training']}" + (
        f" ({row['train_scheduler']}, F={row['train_F']})" if row["train_F"] else ""
    )
    how = "sync" if row["engine"] == "sync" else f"{row['scheduler']} F={row['F']} n={row['sync_threshold']}"
    return (
        f"{what} -> {how} {row['stop_rule']}: acc {100 * row['accuracy']:.2f}%, spikes {row['spikes']:.0f}"
        + (
            f", decision {row['micro_steps_to_decision']:.0f} steps"
            if "micro_steps_to_decision" in row
            else ""
        )
    )


def run(
    preset: str | Preset,
    *,
    data_dir: str | None = None,
    out: Path | str = "results/layer-sync",
    seeds: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run the study with ``preset`` (a name in :data:`PRESETS` or a :class:`Preset`); returns report.md."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ConfigError(f"preset: {preset!r} is not allowed; choose one of {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    n = preset.seeds if seeds is None else seeds
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"seeds: must be a positive integer, got {n!r}")
    for spec in preset.networks:  # fail before any work when the data is missing
        load_dataset(spec.config["dataset"], "test", data_dir)
    log = log or functools.partial(print, flush=True)
    return Study(preset, Path(out), data_dir, list(range(n)), progress, log).run()


def tiny_preset() -> Preset:
    """A preset of seconds on the built-in MNIST subset, for tests: every kind of cell on a few samples."""
    small = dict(dataset="builtin", epochs=1, batch_size=16, train_limit=48, test_limit=32, num_steps=6)
    nets = tuple(
        dataclasses.replace(s, config={**s.config, **small, "architecture": arch})
        for s, arch in zip(PRESETS["quick"].networks, ("16", "ap2-2c4-ap4", "16"))
    )
    return Preset("tiny", nets, group_sizes=(1, 8), k_after=3, calibration_samples=16, expected="seconds")
