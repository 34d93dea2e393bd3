"""The ``device`` setting on a machine without a GPU: validation, ``auto``, device-independent checkpoints.

The same code on a GPU is tested in ``tests/training/test_device_cuda.py`` (skipped here).
"""

import pytest
import torch
import torch.serialization

from asyncsnn.cli import main
from asyncsnn.config import TrainConfig
from asyncsnn.errors import ConfigError
from asyncsnn.training.checkpoint import load_checkpoint, save_checkpoint, to_cpu
from asyncsnn.training.device import resolve_device
from asyncsnn.training.trainer import CHECKPOINT, network_from_checkpoint, train

TINY = dict(
    dataset="builtin", encoder="rate", num_steps=6, architecture="16", epochs=2, batch_size=32, lr=5e-3,
    train_limit=96, test_limit=32, seed=5,
)  # fmt: skip
TORCHRUN_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def quiet(config: TrainConfig, **kwargs):
    return train(config, progress=False, log=lambda _: None, **kwargs)


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without CUDA, whatever this one has; and not under torchrun."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def one_gpu(monkeypatch):
    """A machine that claims one CUDA device (only device names are made, nothing runs on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:0", "cuda:12", "auto"])
def test_device_names_are_accepted_without_a_gpu(name, no_gpu):
    assert TrainConfig(device=name).device == name  # the hardware is checked when a run starts


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:-1", "cuda:x", "cuda0", " cpu", "", 0, None])
def test_malformed_device_names_are_a_clear_error(name):
    with pytest.raises(ConfigError, match=r"device: .* is not allowed; use 'cpu', 'cuda', 'cuda:N'"):
        TrainConfig(device=name)


def test_default_device_is_cpu():
    assert TrainConfig().device == "cpu" and resolve_device("cpu") == torch.device("cpu")


def test_auto_resolves_to_cpu_without_a_gpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_resolves_to_cuda_with_a_gpu(one_gpu):
    assert resolve_device("auto") == torch.device("cuda", 0)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_how_to_fix_it(name, no_gpu):
    with pytest.raises(ConfigError) as err:
        resolve_device(name)
    message = str(err.value)
    assert f"device: '{name}' but torch.cuda.is_available() is False" in message
    assert "install a CUDA build of PyTorch" in message and "--device cpu" in message


def test_cuda_index_beyond_the_devices_is_a_clear_error(one_gpu):
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(
        ConfigError, match=r"'cuda:1' but this machine has 1 CUDA device\(s\) \(cuda:0 to cuda:0\)"
    ):
        resolve_device("cuda:1")


def test_cuda_under_torchrun_takes_the_local_rank(one_gpu, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="would put all 2 torchrun processes on one GPU; use --device cuda"):
        resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match=r"LOCAL_RANK=1 on cuda:1, but this machine has 1 CUDA device"):
        resolve_device("cuda")


def test_train_cli_reports_a_missing_gpu_before_loading_data(tmp_path, no_gpu, capsys):
    code = main(["train", "--device", "cuda", "--out", str(tmp_path / "run"), "--no-plots", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "torch.cuda.is_available() is False" in err and "--device cpu" in err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--device", "gpu", "--out", str(tmp_path / "run")]) == 2
    assert "device: 'gpu' is not allowed" in capsys.readouterr().err


def test_device_flag_is_documented():
    from asyncsnn.cli import build_parser

    subcommands = build_parser()._subparsers._group_actions[0].choices
    for command in ("train", "eval"):
        text = subcommands[command].format_help()
        assert "--device" in text and "cuda:N" in text and "auto" in text and "nccl" in text


def test_to_cpu_returns_cpu_objects_unchanged():
    state = torch.nn.Linear(3, 2).state_dict()
    obj = {"model": state, "history": [{"epoch": 1}], "shape": (1, 2), "n": 3}
    assert to_cpu(obj) is obj and to_cpu(obj)["model"] is state


def _with_cuda_tags(obj, path):
    """Write ``obj`` as a CUDA run would have without moving its tensors: every storage tagged ``cuda:0``."""
    original = torch.serialization.location_tag
    torch.serialization.location_tag = lambda storage: "cuda:0"
    try:
        torch.save(obj, path)
    finally:
        torch.serialization.location_tag = original


def test_a_checkpoint_written_on_a_gpu_loads_on_the_cpu(tmp_path, no_gpu):
    config = TrainConfig(**{**TINY, "epochs": 1, "out": str(tmp_path / "run")})
    result = quiet(config)
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    _with_cuda_tags({**ckpt, "config": {**ckpt["config"], "device": "cuda"}}, tmp_path / "cuda.pt")
    with pytest.raises(RuntimeError, match="CUDA"):  # what torch.load does without map_location
        torch.load(tmp_path / "cuda.pt", weights_only=False)
    loaded = load_checkpoint(tmp_path / "cuda.pt")  # map_location="cpu"
    network, saved = network_from_checkpoint(loaded)
    assert saved.device == "cuda"
    for name, value in result.network.state_dict().items():
        assert network.state_dict()[name].device.type == "cpu"
        assert torch.equal(network.state_dict()[name], value), name
    exp_avg = [s["exp_avg"] for s in loaded["optimizer"]["state"].values()]
    assert exp_avg and all(t.device.type == "cpu" for t in exp_avg)


def test_resume_on_another_device_setting_ends_where_an_uninterrupted_run_ends(tmp_path, no_gpu):
    """A run written with ``device="cuda"`` (tags, config) resumes with ``device="cpu"``, and ``auto``."""
    full = quiet(TrainConfig(**{**TINY, "out": str(tmp_path / "full")}))
    for device in ("cpu", "auto"):
        out = tmp_path / f"part-{device}"
        quiet(TrainConfig(**{**TINY, "epochs": 1, "out": str(out)}))
        ckpt = torch.load(out / CHECKPOINT, weights_only=False)
        _with_cuda_tags({**ckpt, "config": {**ckpt["config"], "device": "cuda"}}, out / CHECKPOINT)
        resumed = quiet(TrainConfig(**{**TINY, "device": device, "out": str(out)}), resume=True)
        assert [h["epoch"] for h in resumed.history] == [1, 2]
        for name, value in full.network.state_dict().items():
            assert torch.equal(resumed.network.state_dict()[name], value), (device, name)


def test_checkpoints_hold_cpu_tensors_and_metrics_record_the_device(tmp_path):
    import json

    quiet(TrainConfig(**{**TINY, "epochs": 1, "device": "cpu", "out": str(tmp_path / "run")}))
    raw = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)  # no map_location
    assert all(t.device.type == "cpu" for t in raw["model"].values())
    assert raw["config"]["device"] == "cpu"
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]["device"] == "cpu"
    save_checkpoint(raw, tmp_path / "copy.pt")
    assert load_checkpoint(tmp_path / "copy.pt", map_location=torch.device("cpu"))["epoch"] == 1


def test_eval_cli_takes_a_device_of_its_own(tmp_path, no_gpu, capsys):
    """``asyncsnn eval --device`` is where this machine computes, not the device the run was trained on."""
    import json

    quiet(TrainConfig(**{**TINY, "epochs": 1, "out": str(tmp_path / "run")}))
    ckpt = tmp_path / "run" / CHECKPOINT
    _with_cuda_tags(
        {**load_checkpoint(ckpt), "config": {**load_checkpoint(ckpt)["config"], "device": "cuda"}}, ckpt
    )
    assert main(["eval", str(ckpt), "--limit", "16", "--no-progress", "--out", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["config"]["device"] == "cpu"
    assert main(["eval", str(ckpt), "--limit", "16", "--device", "auto", "--no-progress"]) == 0
    assert main(["eval", str(ckpt), "--limit", "16", "--device", "cuda", "--no-progress"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err
