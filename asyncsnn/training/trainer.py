"""Training and evaluation loops: data -> encoder -> network -> engine -> loss / metrics.

Determinism: every epoch draws its shuffling and its input encoding from a generator seeded by
``(seed, epoch)``, and evaluation from a generator seeded by ``seed`` alone. So the same seed gives the same
weights and metrics bit for bit on CPU, and a run resumed from the checkpoint of epoch ``e`` continues exactly
as the uninterrupted run would.

Under ``torchrun`` (see :mod:`asyncsnn.training.distributed`) each process trains on a slice of every global
batch of ``batch_size`` samples and the step equals the one-process step (up to float summation order); only
rank 0 logs, evaluates and writes files, and the test metrics are broadcast to every rank.

``config.device`` (see :mod:`asyncsnn.training.device`) puts the network, every batch and the engine work on
that device; the generators stay on the CPU, so shuffling and encoding are the same on every device (the
batches are encoded on the CPU, then moved). Checkpoints hold CPU tensors, so a run may be resumed on another
device.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from asyncsnn import __version__
from asyncsnn.config import TrainConfig
from asyncsnn.data import Encoder, ImageDataset
from asyncsnn.data.packed import PackedFrames
from asyncsnn.engines import async_, sync
from asyncsnn.errors import ConfigError
from asyncsnn.metrics import MetricAccumulator, predict
from asyncsnn.network import Network
from asyncsnn.training.builder import build_gamma_network, build_network
from asyncsnn.training.checkpoint import load_checkpoint, save_checkpoint, write_json
from asyncsnn.training.device import device_of, resolve_device
from asyncsnn.training.distributed import World, init_from_env, synced_gradients
from asyncsnn.training.gamma import StepCrossEntropy, bptt_sequence, online_sequence
from asyncsnn.training.losses import classification_loss, per_step_loss
from asyncsnn.training.tasks import SpikeDataset, encoder_for, load_split

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
_EVAL_STREAM = 7_919  # offsets keep the evaluation stream apart from the training streams


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where PyTorch has a fused kernel for the parameters: one pass over each tensor instead of
    several (on 2 CPU cores, 0.51 instead of 0.86 ms a step for the engine benchmark's 464 k weights)."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or dtype
        return torch.optim.Adam(params, lr=lr)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator for shuffling and encoding in ``epoch`` (1-based) of a run with ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def eval_generator(seed: int) -> torch.Generator:
    """The generator for encoding during evaluation: fixed per seed, so a model scores the same each time."""
    return torch.Generator().manual_seed(seed * 1_000_003 + _EVAL_STREAM)


def subset(ds: ImageDataset | SpikeDataset, samples: slice) -> ImageDataset | SpikeDataset:
    """The ``samples`` of a dataset (packed event frames stay packed)."""
    images = ds.images.subset(samples) if isinstance(ds.images, PackedFrames) else ds.images[samples]
    return dataclasses.replace(ds, images=images, labels=ds.labels[samples])


def to_device(x, device: torch.device):
    """A batch ``x`` on ``device``: tensors move (a no-op where they are); event lists (CPU only) stay."""
    return x.to(device) if isinstance(x, torch.Tensor) else x


def _limit(ds: ImageDataset | SpikeDataset, limit: int | None) -> ImageDataset | SpikeDataset:
    if limit is None or limit >= len(ds):
        return ds
    return subset(ds, slice(0, limit))


@dataclass
class Experiment:
    """Everything a run needs, built from a :class:`TrainConfig`."""

    config: TrainConfig
    train_set: ImageDataset | SpikeDataset
    test_set: ImageDataset | SpikeDataset
    encoder: Encoder
    network: Network


def network_for(config: TrainConfig, input_shape, n_classes: int) -> Network:
    """The network of ``config``, initialised from ``config.seed``."""
    torch.manual_seed(config.seed)
    if config.model == "gamma":
        return build_gamma_network(
            config.architecture,
            input_shape,
            n_classes,
            tau=config.bucket_taus(),
            threshold=config.gamma_threshold,
            adapt=config.gamma_adapt,
            per_synapse=config.per_synapse,
            trainable_tau=config.trainable_tau,
            dt=config.dt,
        )
    return build_network(
        config.architecture,
        input_shape,
        n_classes,
        tau=config.tau,
        threshold=config.threshold,
        reset=config.reset,
        surrogate=config.surrogate,
        dt=config.dt,
        readout=config.readout,
        bias=config.bias,
    )


def engine_for(config: TrainConfig, engine: str | None = None) -> Callable:
    """``run(network, x, labels, sample_offset=0) -> RunResult`` for ``engine`` (default: the config's own
    engine). ``sample_offset``: the index of ``x``'s first sample in its global batch; the asynchronous
    engine draws its random numbers from it (see :func:`asyncsnn.engines.async_.run`), the synchronous one
    ignores it."""
    engine = engine or config.engine
    if engine == "sync":
        return lambda network, x, labels=None, sample_offset=0: sync.run(network, x)
    async_config = config.async_config()
    return lambda network, x, labels=None, sample_offset=0: async_.run(
        network, x, async_config, labels=labels, sample_offset=sample_offset
    )


def prepare(config: TrainConfig) -> Experiment:
    """Load data (applying the limits), build the encoder and a freshly initialised network."""
    train_set = _limit(load_split(config, "train"), config.train_limit)
    test_set = _limit(load_split(config, "test"), config.test_limit)
    encoder = encoder_for(config, train_set)
    network = network_for(config, encoder.input_shape, train_set.n_classes)
    return Experiment(config, train_set, test_set, encoder, network)


def evaluate(
    network: Network,
    dataset: ImageDataset,
    encoder: Encoder,
    *,
    batch_size: int = 256,
    seed: int = 0,
    readout: str | None = None,
    progress: bool = True,
    desc: str = "eval",
    run: Callable | None = None,
    loss_start: float = 0.0,
    accumulator: MetricAccumulator | None = None,
) -> dict[str, float]:
    """Metrics of ``network`` on ``dataset`` (accuracy, spikes, SynOps, ... as mean and std per sample).

    ``run(network, x, labels)`` is the engine (see :func:`engine_for`); default: layer-synchronous. It runs
    on the device of ``network``: batches are encoded on the CPU, then moved there.
    A SpikingGamma network is judged on its readout from ``loss_start`` ms on (its training window).
    Pass an empty ``accumulator`` to keep the per-sample values as well.
    """
    run = run or (lambda network, x, labels=None: sync.run(network, x))
    readout = readout or ("membrane" if network.readout_is_membrane else "spikes")
    window = window_start(network, loss_start)
    acc = accumulator if accumulator is not None else MetricAccumulator()
    acc.readout, acc.predict_from = readout, window
    generator = eval_generator(seed)
    device = device_of(network)
    losses = []
    was_training = network.training
    network.eval()
    with torch.no_grad():
        for start in tqdm(
            range(0, len(dataset), batch_size),
            desc=desc,
            leave=False,
            disable=None if progress else True,
        ):
            images = dataset.images[start : start + batch_size]
            labels = dataset.labels[start : start + batch_size].to(device)
            result = run(network, to_device(encoder(images, generator), device), labels)
            if network.is_gamma:
                loss = per_step_loss(result.output[window:], labels)
            else:
                loss = classification_loss(result.output, labels, readout)
            losses.append(loss.item() * len(labels))
            acc.add(result, labels, network)
    network.train(was_training)
    summary = acc.summary()
    summary["loss"] = sum(losses) / len(dataset)
    return summary


def train_epoch(
    exp: Experiment,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    *,
    progress: bool = True,
    world: World | None = None,
) -> dict[str, float]:
    """One pass over the training set; returns mean loss and training accuracy (over all ranks of ``world``).

    With several ranks each one trains on its slice of every global batch of ``batch_size`` samples. The
    batches go to the device of ``exp.network``.
    """
    cfg, net = exp.config, exp.network
    world = world or World()
    device = device_of(net)
    run = engine_for(cfg)
    generator = epoch_generator(cfg.seed, epoch)
    for group in optimizer.param_groups:
        group["lr"] = cfg.learning_rate(epoch)
    order = torch.randperm(len(exp.train_set), generator=generator)
    net.train()
    total_loss, correct, seen = 0.0, 0, 0
    bar = tqdm(
        range(0, len(order), cfg.batch_size),
        desc=f"epoch {epoch}/{cfg.epochs}",
        leave=False,
        disable=None if progress and world.is_main else True,
    )
    with synced_gradients(optimizer, world) as sync:
        for start in bar:
            batch = order[start : start + cfg.batch_size]
            # The whole global batch is encoded on every rank, then sliced: each sample gets the spikes of
            # a one-process run and the generator advances alike everywhere.
            x = exp.encoder(exp.train_set.images[batch], generator)
            mine = world.shard(len(batch))
            idx, x = batch[mine], to_device(x[:, mine], device)
            sync.weight = len(idx) / len(batch)
            optimizer.zero_grad(set_to_none=True)
            if len(idx) == 0:  # fewer samples than ranks: still take part in every step's reduction
                for _ in range(_steps_per_batch(cfg, x.shape[0])):
                    optimizer.step()
                continue
            # offset mine.start: the slice draws the asynchronous engine's random numbers of a one-process run
            labels = exp.train_set.labels[idx].to(device)
            loss_value, n_correct = _train_batch(
                net, run, x, labels, cfg, optimizer, sample_offset=mine.start
            )
            total_loss += loss_value * len(idx)
            correct += n_correct
            seen += len(idx)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    total_loss, correct, seen = world.sum([total_loss, correct, seen])
    return {"loss": total_loss / seen, "accuracy": correct / seen}


def _train_batch(
    net: Network,
    run: Callable,
    x: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
    sample_offset: int = 0,
) -> tuple[float, int]:
    """Forward, backward and step on one batch; returns (mean loss, number of correct predictions).
    ``sample_offset``: the batch's first sample's index in the global batch (multi-process training)."""
    if net.is_gamma:
        output, loss_value = _gamma_step(net, x, labels, cfg, optimizer)
        readout, start = "membrane", window_start(net, cfg.loss_start)
    else:
        result = run(net, x, labels, sample_offset=sample_offset)
        loss = classification_loss(result.output, labels, cfg.readout)
        loss.backward()
        optimizer.step()
        output, loss_value, readout, start = result.output.detach(), loss.item(), cfg.readout, 0
    return loss_value, int((predict(output[start:], readout) == labels).sum())


def _steps_per_batch(cfg: TrainConfig, num_steps: int) -> int:
    """How many optimizer steps one batch takes (online SpikingGamma training may update within it)."""
    if cfg.model == "gamma" and cfg.training == "online" and cfg.update_every is not None:
        return -(-num_steps // cfg.update_every)
    return 1


def window_start(network: Network, loss_start: float) -> int:
    """First step of the loss / prediction window of a SpikingGamma readout (0 for LIF networks)."""
    return int(round(loss_start / network.dt)) if network.is_gamma else 0


def _gamma_step(
    net: Network,
    x: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    optimizer: torch.optim.Optimizer,
) -> tuple[torch.Tensor, float]:
    """One SpikingGamma batch: cross-entropy at every step of the window, by BPTT or online."""
    start = window_start(net, cfg.loss_start)
    if start >= x.shape[0]:
        raise ConfigError(
            f"loss_start: {cfg.loss_start} ms is not before the end of the sequence "
            f"({x.shape[0] * net.dt:g} ms)"
        )
    step_loss = StepCrossEntropy(labels, start, x.shape[0] - start)

    if cfg.training == "online":
        stream = optimizer if cfg.update_every is not None else None
        output, loss = online_sequence(net, x, step_loss, optimizer=stream, update_every=cfg.update_every)
    else:
        output, loss = bptt_sequence(net, x, step_loss)
    if cfg.training != "online" or cfg.update_every is None or x.shape[0] % cfg.update_every:
        optimizer.step()
    return output, loss


@dataclass
class TrainResult:
    """What :func:`train` produced: the network, per-epoch history, final test metrics and file paths."""

    network: Network
    history: list[dict[str, Any]]
    test_metrics: dict[str, float]
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)


_RESUMABLE_CHANGES = {"epochs", "out", "data_dir", "device"}


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    prepared: Experiment | None = None,
    test_each_epoch: bool = True,
) -> TrainResult:
    """Train as configured, writing ``checkpoint.pt`` (atomically, every epoch) and ``metrics.json``.

    With ``resume=True`` it continues from ``<out>/checkpoint.pt`` and ends where an uninterrupted run ends.
    ``prepared`` (from :func:`prepare`, or built from data already in memory) skips loading the data again.
    ``test_each_epoch=False`` skips the test-set evaluation after each epoch (the caller evaluates).
    Launched by ``torchrun`` it trains data-parallel (see :mod:`asyncsnn.training.distributed`).
    It computes on ``config.device`` (the network of ``prepared`` is moved there); a run may be resumed on
    another device than the one it started on.
    """
    device = resolve_device(config.device)
    world = init_from_env(device)
    if not world.is_main:
        log, progress = (lambda _: None), False
    out_dir = Path(config.out)
    exp = prepared if prepared is not None else prepare(config)
    exp.network.to(device)  # before the optimizer is made: it keeps its state beside the parameters
    optimizer = make_optimizer(exp.network.parameters(), config.lr)
    history: list[dict[str, Any]] = []
    start_epoch = 1
    ckpt_path = out_dir / CHECKPOINT
    if resume:
        if not ckpt_path.is_file():
            log(f"no checkpoint at {ckpt_path}; starting from scratch")
        else:
            ckpt = load_checkpoint(ckpt_path, map_location="cpu")  # load_state_dict copies onto the device
            _check_same_run(TrainConfig.from_dict(ckpt["config"]), config)
            exp.network.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            history = ckpt["history"]
            start_epoch = ckpt["epoch"] + 1
            log(f"resuming {ckpt_path} after epoch {ckpt['epoch']}")
    test_metrics = history[-1]["test"] if history else {}
    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        train_stats = train_epoch(exp, optimizer, epoch, progress=progress, world=world)
        train_time = time.perf_counter() - t0
        test_metrics = {}
        if test_each_epoch and world.is_main:  # one evaluation, broadcast below: identical on every rank
            test_metrics = evaluate(
                exp.network,
                exp.test_set,
                exp.encoder,
                batch_size=max(config.batch_size, 256),
                seed=config.seed,
                progress=progress,
                desc=f"test {epoch}",
                run=engine_for(config),
                loss_start=config.loss_start,
            )
        test_metrics = world.broadcast(test_metrics)
        history.append(
            {"epoch": epoch, "train": train_stats, "test": test_metrics, "train_seconds": train_time}
        )
        tested = (
            f" | test acc {100 * test_metrics['accuracy']:.2f}% spikes/sample {test_metrics['spikes']:.1f}"
            if test_metrics
            else ""
        )
        log(
            f"epoch {epoch}/{config.epochs}: train loss {train_stats['loss']:.4f} acc "
            f"{100 * train_stats['accuracy']:.2f}%{tested} | {train_time:.1f}s"
        )
        if not world.is_main:
            continue
        save_checkpoint(
            {
                "format": 1,
                "version": __version__,
                "config": config.to_dict(),
                "input_shape": list(exp.encoder.input_shape),
                "n_classes": exp.train_set.n_classes,
                "epoch": epoch,
                "model": exp.network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "history": history,
            },
            ckpt_path,
        )
        write_json(_metrics_document(config, history), out_dir / METRICS)
    world.barrier()  # every rank returns once the files are written
    return TrainResult(
        exp.network,
        history,
        test_metrics,
        out_dir,
        {"checkpoint": ckpt_path, "metrics": out_dir / METRICS},
    )


def _metrics_document(config: TrainConfig, history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "asyncsnn_version": __version__,
        "config": config.to_dict(),
        "epochs_completed": len(history),
        "test": history[-1]["test"],
        "history": history,
    }


def _check_same_run(saved: TrainConfig, requested: TrainConfig) -> None:
    diff = [
        f"{k}: checkpoint {getattr(saved, k)!r} vs requested {getattr(requested, k)!r}"
        for k in TrainConfig.field_names()
        if k not in _RESUMABLE_CHANGES and getattr(saved, k) != getattr(requested, k)
    ]
    if diff:
        raise ConfigError(
            "--resume needs the same settings as the interrupted run (only epochs may grow); differences: "
            + "; ".join(diff)
        )


def network_from_checkpoint(ckpt: dict[str, Any]) -> tuple[Network, TrainConfig]:
    """Rebuild the trained network and its configuration from a loaded checkpoint.

    The network is built on the CPU, whatever device trained it; ``network.to(device)`` moves it."""
    config = TrainConfig.from_dict(ckpt["config"])
    network = network_for(config, tuple(ckpt["input_shape"]), int(ckpt["n_classes"]))
    network.load_state_dict(ckpt["model"])
    return network, config
