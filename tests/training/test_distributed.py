"""Data-parallel training on 2 CPU processes (gloo) takes the steps of 1 process on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from asyncsnn.cli import main
from asyncsnn.config import TrainConfig
from asyncsnn.training.distributed import World
from asyncsnn.training.trainer import METRICS, prepare, train

# The working tiny async configuration of tests/test_cli.py; and with the default random scheduler, whose keys
# are drawn per sample id: each rank passes its slice start as ``sample_offset``, so the keys are those of one
# process.
ASYNC = dict(engine="async", bias=False, scheduler="momentum", group_size=8)
ASYNC_RANDOM = dict(engine="async", bias=False, scheduler="random", group_size=8)
# Only the summation order of the gradients differs (float32 sums per slice, added in float64). Adam divides
# by the gradient's running scale, so a weight whose gradient nearly cancels moves by up to ~4e-6 more or less
# (1 of 25088 input weights in the sync run); everything else agrees to ~1e-7.
ATOL = 1e-5


@pytest.fixture(scope="module")
def tiny(load_script) -> dict:
    """The tiny training configuration of tests/training/test_trainer.py."""
    return load_script("tests/training/test_trainer.py").TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, runs: list[tuple[dict, bool]], dump: str) -> None:
    """Train each ``(config, resume)`` of ``runs`` in turn in one process group; run ``i`` goes to
    ``dump.i.rank``."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    try:
        for i, (config, resume) in enumerate(runs):
            result = train(TrainConfig(**config), resume=resume, progress=False, log=lambda _: None)
            torch.save(
                {"model": result.network.state_dict(), "history": result.history}, f"{dump}.{i}.{rank}"
            )
    finally:
        dist.destroy_process_group()


def _train_two_processes(config: dict, dump: str) -> list[dict]:
    return _train_runs_on_two_processes([(config, False)], dump)[0]


def _train_runs_on_two_processes(runs: list[tuple[dict, bool]], dump: str) -> list[list[dict]]:
    """The results ``[run][rank]`` of ``(config, resume)`` runs, one after another on the same 2 processes."""
    mp.spawn(_worker, args=(2, _free_port(), runs, dump), nprocs=2, join=True)
    return [[torch.load(f"{dump}.{i}.{rank}") for rank in range(2)] for i in range(len(runs))]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        ASYNC,
        ASYNC_RANDOM,
        # unequal slices (32 + 31) and a last global batch of 1 sample, which leaves rank 1 empty
        dict(batch_size=63, train_limit=253, epochs=1),
    ],
    ids=["sync", "async", "async-random", "sync-unequal-slices"],
)
def test_two_processes_train_the_same_weights_as_one(tmp_path, overrides, tiny):
    config = {**tiny, **overrides, "out": str(tmp_path / "two")}
    one = train(TrainConfig(**{**config, "out": str(tmp_path / "one")}), progress=False, log=lambda _: None)
    ranks = _train_two_processes(config, str(tmp_path / "dump"))
    for name, value in one.network.state_dict().items():
        torch.testing.assert_close(ranks[0]["model"][name], value, atol=ATOL, rtol=0, msg=name)
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name  # ranks agree exactly
    for h1, h2 in zip(one.history, ranks[0]["history"], strict=True):
        assert h1["train"] == pytest.approx(h2["train"], abs=1e-6)
        assert h1["test"] == pytest.approx(h2["test"], abs=1e-6)
    assert ranks[0]["history"][-1]["test"] == ranks[1]["history"][-1]["test"]  # evaluated once, broadcast
    doc = json.loads((tmp_path / "two" / METRICS).read_text())
    assert doc["epochs_completed"] == config["epochs"] and doc["test"] == ranks[0]["history"][-1]["test"]


def test_two_processes_resume_where_an_uninterrupted_two_process_run_ends(tmp_path, tiny):
    """Every rank reads rank 0's checkpoint of epoch 1; the run ends with the weights of 2 epochs in a row."""
    config = {**tiny, "train_limit": 128, "test_limit": 64, "epochs": 2}
    part = {**config, "out": str(tmp_path / "part")}
    runs = [
        ({**config, "out": str(tmp_path / "full")}, False),
        ({**part, "epochs": 1}, False),  # "interrupted" after epoch 1
        (part, True),
    ]
    full, _, resumed = _train_runs_on_two_processes(runs, str(tmp_path / "dump"))
    for rank in range(2):
        assert [h["epoch"] for h in resumed[rank]["history"]] == [1, 2]
        for name, value in full[0]["model"].items():
            assert torch.equal(resumed[rank]["model"][name], value), (rank, name)
    for h_full, h_resumed in zip(full[0]["history"], resumed[0]["history"], strict=True):
        assert h_full["train"] == h_resumed["train"] and h_full["test"] == h_resumed["test"]
    doc = json.loads((tmp_path / "part" / METRICS).read_text())
    assert doc["epochs_completed"] == 2 and doc["test"] == full[0]["history"][-1]["test"]


def test_shards_cover_a_batch_once_in_order():
    for n in range(0, 9):
        parts = [World(rank, 3).shard(n) for rank in range(3)]
        assert list(range(n)) == [i for s in parts for i in range(n)[s]]
        assert max(len(range(n)[s]) for s in parts) - min(len(range(n)[s]) for s in parts) <= 1


def test_torchrun_cli_matches_one_process(tmp_path, tiny):
    """``torchrun -m asyncsnn train``: the environment torchrun sets is detected; rank 0 alone reports."""
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in {**tiny, "epochs": 1}.items()]
    assert main(["train", *flags, "--out", str(tmp_path / "one"), "--no-plots", "--no-progress"]) == 0
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
    ]
    torchrun.append(f"--master_port={_free_port()}")
    done = subprocess.run(
        [
            *torchrun,
            "-m",
            "asyncsnn",
            "train",
            *flags,
            "--out",
            str(tmp_path / "two"),
            "--no-plots",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("model checkpoint:") == 1 and "on 2 processes" in done.stdout
    one, two = (json.loads((tmp_path / d / METRICS).read_text()) for d in ("one", "two"))
    assert one["test"] == pytest.approx(two["test"], abs=1e-6)
    assert one["history"][0]["train"] == pytest.approx(two["history"][0]["train"], abs=1e-6)


@pytest.mark.parametrize("update_every", [None, 4], ids=["online", "online-streaming"])
def test_two_processes_train_spiking_gamma_online_like_one(tmp_path, write_fake_vowels, update_every):
    """SpikingGamma online training writes .grad itself and may step inside a batch: each step is reduced."""
    write_fake_vowels(tmp_path / "data" / "japanese-vowels")
    config = dict(
        model="gamma", training="online", dataset="japanese-vowels", data_dir=str(tmp_path / "data"),
        architecture="16", series_step=3.0, loss_start=6.0, gamma_threshold=0.2, batch_size=16,
        train_limit=48, test_limit=18, lr=0.02, epochs=1, update_every=update_every,
        out=str(tmp_path / "two"),
    )  # fmt: skip
    one = train(TrainConfig(**{**config, "out": str(tmp_path / "one")}), progress=False, log=lambda _: None)
    ranks = _train_two_processes(config, str(tmp_path / "dump"))
    initial = prepare(TrainConfig(**config)).network.state_dict()
    for name, value in one.network.state_dict().items():
        torch.testing.assert_close(ranks[0]["model"][name], value, atol=ATOL, rtol=0, msg=name)
        assert torch.equal(ranks[0]["model"][name], ranks[1]["model"][name]), name
    assert any(not torch.equal(initial[k], v) for k, v in one.network.state_dict().items()), "nothing trained"
    assert one.history[0]["train"] == pytest.approx(ranks[0]["history"][0]["train"], abs=1e-6)
