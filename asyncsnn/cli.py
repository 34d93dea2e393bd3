"""The ``asyncsnn`` command-line tool. It only wires the library together."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from asyncsnn import __version__
from asyncsnn.errors import AsyncSNNError

SUMMARY_KEYS = [
    "accuracy",
    "loss",
    "spikes",
    "spikes_layer*",
    "synops",
    "spike_density",
    "spike_rate_hz",
    "frames_to_first_output",
    "micro_steps_to_first_output",
    "micro_steps_to_decision",
    "spikes_before_first_output",
    "spikes_before_first_correct",
]


# ----- helpers ---------------------------------------------------------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


DEVICE_HELP = (
    "where to compute: cpu, cuda, cuda:N or auto (cuda if available, else cpu); under torchrun, cuda gives "
    "each process cuda:LOCAL_RANK and the processes talk over nccl"
)
FLAG_HELP = {"device": DEVICE_HELP}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field; defaults are None so only given flags override."""
    from asyncsnn.config import TrainConfig

    types = {"int": int, "float": float, "str": str, "int | None": int, "str | None": str, "bool": _boolean}
    for f in fields(TrainConfig):
        about = FLAG_HELP.get(f.name)
        parser.add_argument(
            _flag(f.name),
            dest=f.name,
            type=types[str(f.type)],
            default=None,
            help=f"{about} (default: {f.default!r})" if about else f"(default: {f.default!r})",
        )


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


ASYNC_FLAGS = ("engine", "group_size", "scheduler", "input_mode", "sync_threshold", "max_steps",
               "stop_after_output", "carry_over")  # fmt: skip


def _config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None):
    from asyncsnn.config import TrainConfig, load_config_file

    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        values.update(load_config_file(args.config))
    for name in TrainConfig.field_names():
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    return TrainConfig.from_dict(values)


def _print_summary(rows: list[tuple[str, dict[str, float]]]) -> None:
    from asyncsnn.metrics import format_table

    keys = []
    for k in SUMMARY_KEYS:
        if k.endswith("*"):
            keys += sorted(
                {name for _, r in rows for name in r if name.startswith(k[:-1]) and not name.endswith("_std")}
            )
        elif any(k in r for _, r in rows):
            keys.append(k)
    print(format_table(rows, keys))


def _plots(result, out_dir: Path, exp_encoder, test_set) -> list[Path]:
    """Training curves and a spike raster of the first test sample, when matplotlib is installed."""
    from asyncsnn.plots import matplotlib_available, plot_raster, plot_training

    if not matplotlib_available():
        print("(no plots: install matplotlib with  pip install 'asyncsnn[plot]')")
        return []
    import torch

    from asyncsnn.engines import sync
    from asyncsnn.training.device import device_of
    from asyncsnn.training.trainer import eval_generator

    paths = [plot_training(result.history, out_dir / "training.png")]
    with torch.no_grad():
        x = exp_encoder(test_set.images[:1], eval_generator(0)).to(device_of(result.network))
        outputs, _, _ = sync.population_outputs(result.network, x)
    spikes = [o[:, 0].cpu() for o, layer in zip(outputs, result.network.layers) if layer.population.spiking]
    label = test_set.classes[int(test_set.labels[0])]
    paths.append(plot_raster(spikes, out_dir / "raster.png", title=f"test sample 0 (label {label})"))
    return paths


# ----- commands --------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace, base: dict[str, Any] | None = None) -> int:
    from asyncsnn.training.device import resolve_device
    from asyncsnn.training.distributed import init_from_env, shutdown
    from asyncsnn.training.trainer import prepare, train

    config = _config_from_args(args, base)
    device = resolve_device(config.device)  # a missing GPU is reported before any data is loaded
    world = init_from_env(device)  # under torchrun: one process group, and only rank 0 reports
    try:
        if world.is_main:
            where = f" on {world.size} processes" if world.size > 1 else ""
            if world.backend:
                where += f" ({world.backend})"
            if device.type != "cpu":
                where += f" on {device}"
            print(
                f"training {config.architecture} on {config.dataset} ({config.encoder}, "
                f"T={config.num_steps}) for {config.epochs} epochs -> {config.out}{where}"
            )
        result = train(config, resume=args.resume, progress=not args.no_progress)
    finally:
        shutdown()
    if not world.is_main:
        return 0
    out_dir = Path(config.out)
    last = result.history[-1]
    print()
    _print_summary([("train (last epoch)", last["train"]), (f"test ({config.dataset})", last["test"])])
    exp = prepare(config) if not args.no_plots else None
    paths = [] if exp is None else _plots(result, out_dir, exp.encoder, exp.test_set)
    print(f"\nmodel checkpoint: {result.files['checkpoint']}")
    print(f"metrics (JSON):   {result.files['metrics']}")
    for p in paths:
        print(f"plot:             {p}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    preset = {
        "dataset": "builtin",
        "encoder": "rate",
        "num_steps": 25,
        "architecture": "256",
        "epochs": 8,
        "batch_size": 64,
        "lr": 1e-3,
        "tau": 10.0,
        "threshold": 1.0,
        "seed": 0,
        "out": args.out,
    }
    print(
        "asyncsnn demo: a 784-256-10 LIF network, trained layer-synchronously with BPTT on the built-in\n"
        "MNIST subset (8,000 train / 2,000 test images, rate-coded over 25 frames).\n"
    )
    ns = argparse.Namespace(config=None, resume=False, no_progress=args.no_progress, no_plots=False)
    cmd_train(ns, preset)
    _demo_async(Path(args.out), progress=not args.no_progress)
    return 0


def _demo_async(out_dir: Path, progress: bool) -> None:
    """Run the trained network asynchronously and compare with the synchronous test metrics."""
    import json

    from asyncsnn.config import TrainConfig
    from asyncsnn.engines.kernels import numba_available
    from asyncsnn.training.checkpoint import load_checkpoint, write_json
    from asyncsnn.training.tasks import encoder_for, load_split
    from asyncsnn.training.trainer import engine_for, evaluate, network_from_checkpoint

    if not numba_available():
        print("\n(to also see the network run asynchronously: pip install 'asyncsnn[fast]')")
        return
    network, config = network_from_checkpoint(load_checkpoint(out_dir))
    overrides = {"engine": "async", "scheduler": "momentum", "group_size": 8}
    async_config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    print("\nThe same weights, run asynchronously (event-driven: momentum scheduler, F = 8 events per")
    print("micro-step; the first run compiles the kernel, some 20 s):")
    data = load_split(config, "test")
    metrics = evaluate(
        network, data, encoder_for(config, data), batch_size=256, seed=config.seed, progress=progress,
        desc="async eval", run=engine_for(async_config),
    )  # fmt: skip
    synchronous = json.loads((out_dir / "metrics.json").read_text())["test"]
    print()
    _print_summary([("layer-synchronous", synchronous), ("asynchronous", metrics)])
    path = out_dir / "eval_builtin_test_async.json"
    write_json({"config": async_config.to_dict(), "metrics": metrics}, path)
    print(f"\nasync metrics (JSON): {path}")


def cmd_eval(args: argparse.Namespace) -> int:
    from asyncsnn.config import TrainConfig
    from asyncsnn.training.checkpoint import load_checkpoint, write_json
    from asyncsnn.training.device import resolve_device
    from asyncsnn.training.tasks import encoder_for, load_split
    from asyncsnn.training.trainer import _limit, engine_for, evaluate, network_from_checkpoint

    device = resolve_device(args.device)  # not the training run's device: this machine may have no GPU
    ckpt = load_checkpoint(args.checkpoint)
    network, config = network_from_checkpoint(ckpt)
    network.to(device)
    overrides = {k: getattr(args, k) for k in ASYNC_FLAGS if getattr(args, k) is not None}
    overrides["device"] = args.device
    if args.dataset:
        overrides["dataset"] = args.dataset
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.dt is not None:  # parameters are in physical time: only the step and the input binning change
        overrides["dt"] = args.dt
    config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    network.set_dt(config.dt)
    data = _limit(load_split(config, args.split), args.limit)
    metrics = evaluate(
        network,
        data,
        encoder_for(config, data),
        batch_size=args.batch_size,
        seed=config.seed,
        progress=not args.no_progress,
        desc=f"eval {config.dataset}/{args.split}",
        run=engine_for(config),
        loss_start=config.loss_start,
    )
    doc = {
        "asyncsnn_version": __version__,
        "checkpoint": str(args.checkpoint),
        "dataset": config.dataset,
        "split": args.split,
        "engine": config.engine,
        "dt": config.dt,
        "config": config.to_dict(),
        "metrics": metrics,
    }
    run_dir = Path(args.checkpoint) if Path(args.checkpoint).is_dir() else Path(args.checkpoint).parent
    dt_tag = f"_dt{config.dt:g}" if args.dt is not None else ""
    out = (
        Path(args.out)
        if args.out
        else run_dir / f"eval_{config.dataset}_{args.split}_{config.engine}{dt_tag}.json"
    )
    write_json(doc, out)
    _print_summary([(f"{config.dataset}/{args.split} ({config.engine}, dt={config.dt:g} ms)", metrics)])
    print(f"\nmetrics (JSON): {out}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from asyncsnn.data import dataset_status, fetch_japanese_vowels, neuromorphic_status, resolve_data_dir

    if args.fetch:
        folder = fetch_japanese_vowels(args.data_dir, wheel=args.wheel)
        print(f"japanese-vowels: JapaneseVowels_TRAIN.ts and _TEST.ts are in {folder}\n")
    root = resolve_data_dir(args.data_dir)
    print(f"data directory: {root if root else '(none: pass --data-dir or set ASYNCSNN_DATA)'}\n")
    rows = dataset_status(args.data_dir) + _series_status(args.data_dir) + neuromorphic_status(args.data_dir)
    width = max(len(f"{r['name']}/{r['split']}") for r in rows)
    for r in rows:
        mark = "available" if r["available"] else "missing  "
        print(
            f"{(r['name'] + '/' + r['split']).ljust(width)}  {mark}  {r.get('path') or r.get('reason', '')}"
        )
    return 0


def _series_status(data_dir: str | None) -> list[dict[str, object]]:
    from asyncsnn.data import load_japanese_vowels
    from asyncsnn.errors import DataError

    rows: list[dict[str, object]] = []
    for split in ("train", "test"):
        row: dict[str, object] = {"name": "japanese-vowels", "split": split}
        try:
            data = load_japanese_vowels(split, data_dir)
            row.update(available=True, path=f"{len(data)} series, {data.channels} channels")
        except DataError as err:
            reason = (
                str(err).split(";")[0] + "; get it with: asyncsnn data --fetch japanese-vowels --data-dir DIR"
            )
            row.update(available=False, reason=reason)
        rows.append(row)
    return rows


def cmd_reproduce(args: argparse.Namespace) -> int:
    from asyncsnn.studies import STUDIES

    study = STUDIES[args.study]()
    report = study(
        args.preset,
        data_dir=args.data_dir,
        out=Path(args.out or f"results/{args.study}-{args.preset}"),
        seeds=args.seeds,
        progress=not args.no_progress,
    )
    print(f"\nreport: {report}")
    return 0


# ----- entry point -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncsnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"asyncsnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a small LIF network on the built-in data (about a minute)")
    p.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a network; flags override the config file")
    p.add_argument("--config", help="TOML or YAML file with configuration keys (see README)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="do not write figures")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset -> metrics JSON")
    p.add_argument("checkpoint", help="checkpoint file or a run's output folder")
    p.add_argument("--dataset", help="dataset (default: the one it was trained on)")
    p.add_argument("--data-dir", help="data directory (default: ASYNCSNN_DATA / the training run's)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--engine", choices=["sync", "async"], help="execution engine (default: the trained one)")
    p.add_argument("--group-size", type=int, help="async: events delivered per sample per micro-step (F)")
    p.add_argument("--scheduler", help="async: random, momentum, fifo, layer")
    p.add_argument("--input-mode", help="async: prioritized or scheduled")
    p.add_argument("--sync-threshold", type=int, help="async: input events a neuron needs before firing")
    p.add_argument("--max-steps", type=int, help="async: micro-steps per frame at most")
    p.add_argument("--stop-after-output", type=int, help="async: stop k micro-steps after the first output")
    p.add_argument("--carry-over", type=_boolean, help="async: carry undelivered events to the next frame")
    p.add_argument("--dt", type=float, help="step length in ms to run at (default: the trained one)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help=f"{DEVICE_HELP} (default: cpu)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples")
    p.add_argument("--out", help="metrics JSON path (default: next to the checkpoint)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("data", help="show which datasets are available and what is missing where")
    p.add_argument("--data-dir", help="data directory (default: ASYNCSNN_DATA)")
    p.add_argument(
        "--fetch",
        choices=["japanese-vowels"],
        help="put a dataset into the data directory first (JapaneseVowels: from the aeon wheel, via pip)",
    )
    p.add_argument("--wheel", help="with --fetch japanese-vowels: a local aeon-*.whl instead of downloading")
    p.set_defaults(func=cmd_data)

    from asyncsnn.studies import STUDIES
    from asyncsnn.studies.report import PRESETS

    p = sub.add_parser("reproduce", help="run a study end to end -> CSV, Markdown report and figures")
    p.add_argument("study", choices=sorted(STUDIES), help="which study (see README, Results)")
    p.add_argument(
        "--preset",
        default="quick",
        choices=PRESETS,
        help="quick (minutes) or full (the study states its expected time)",
    )
    p.add_argument("--data-dir", help="data directory (default: ASYNCSNN_DATA)")
    p.add_argument("--out", help="output folder (default: results/<study>-<preset>)")
    p.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors the user can fix are printed as one line, exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except AsyncSNNError as err:
        print(f"asyncsnn: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted; the last completed epoch is in the checkpoint: rerun with --resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
