"""End-to-end training on a tiny slice of the built-in data: determinism, resume, checkpoints."""

import json

import pytest
import torch

from asyncsnn.config import TrainConfig
from asyncsnn.errors import AsyncSNNError, ConfigError
from asyncsnn.training.checkpoint import load_checkpoint
from asyncsnn.training.trainer import CHECKPOINT, METRICS, make_optimizer, network_from_checkpoint, train

TINY = dict(
    dataset="builtin",
    encoder="rate",
    num_steps=8,
    architecture="32",
    epochs=2,
    batch_size=64,
    lr=5e-3,
    train_limit=256,
    test_limit=128,
    seed=3,
)


def tiny(tmp_path, name, **overrides):
    return TrainConfig(**{**TINY, "out": str(tmp_path / name), **overrides})


def weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_same_seed_gives_identical_weights_and_metrics(tmp_path):
    a = train(tiny(tmp_path, "a"), progress=False, log=lambda _: None)
    b = train(tiny(tmp_path, "b"), progress=False, log=lambda _: None)
    for k, v in weights(a.network).items():
        assert torch.equal(v, weights(b.network)[k]), k
    assert a.history[-1]["test"] == b.history[-1]["test"]
    assert a.history[-1]["train"] == b.history[-1]["train"]
    c = train(tiny(tmp_path, "c", seed=4), progress=False, log=lambda _: None)
    assert not torch.equal(weights(a.network)["body.1.weight"], weights(c.network)["body.1.weight"])


def test_training_learns_and_writes_files(tmp_path):
    result = train(tiny(tmp_path, "run", epochs=3), progress=False, log=lambda _: None)
    first, last = result.history[0], result.history[-1]
    assert last["train"]["loss"] < first["train"]["loss"]
    assert last["test"]["accuracy"] > 0.5  # 10 classes: chance is 0.1
    doc = json.loads((tmp_path / "run" / METRICS).read_text())
    assert doc["epochs_completed"] == 3 and doc["config"]["seed"] == 3
    assert doc["test"]["spikes"] > 0 and doc["test"]["synops"] > 0
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    net, cfg = network_from_checkpoint(ckpt)
    for k, v in weights(result.network).items():
        assert torch.equal(v, net.state_dict()[k])
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temporaries


def test_prepared_data_without_per_epoch_tests_trains_the_same_weights(tmp_path):
    from asyncsnn.training.trainer import prepare

    plain = train(tiny(tmp_path, "plain"), progress=False, log=lambda _: None)
    config = tiny(tmp_path, "prepared")
    lines = []
    quiet = train(config, prepared=prepare(config), test_each_epoch=False, progress=False, log=lines.append)
    for k, v in weights(plain.network).items():
        assert torch.equal(v, weights(quiet.network)[k]), k
    assert all(h["test"] == {} for h in quiet.history) and quiet.test_metrics == {}
    assert lines and not any("test acc" in line for line in lines)


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    full = train(tiny(tmp_path, "full", epochs=3), progress=False, log=lambda _: None)
    train(tiny(tmp_path, "part", epochs=1), progress=False, log=lambda _: None)  # "interrupted" after 1
    resumed = train(tiny(tmp_path, "part", epochs=3), resume=True, progress=False, log=lambda _: None)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for k, v in weights(full.network).items():
        assert torch.equal(v, weights(resumed.network)[k]), k
    assert full.history[-1]["test"] == resumed.history[-1]["test"]


def test_resume_refuses_changed_settings(tmp_path):
    train(tiny(tmp_path, "r", epochs=1), progress=False, log=lambda _: None)
    with pytest.raises(ConfigError, match="lr"):
        train(tiny(tmp_path, "r", epochs=2, lr=0.1), resume=True, progress=False, log=lambda _: None)


def test_corrupt_or_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(AsyncSNNError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AsyncSNNError, match="could not be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_empty_dataset_is_rejected():
    from asyncsnn.data import ImageDataset

    with pytest.raises(ValueError, match="empty"):
        ImageDataset(
            "x",
            "train",
            torch.zeros(0, 28, 28, dtype=torch.uint8),
            torch.zeros(0, dtype=torch.int64),
            10,
            tuple("0123456789"),
        )


def test_optimizer_is_fused_adam_with_plain_adams_steps():
    w = torch.randn(30, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fused_w, plain_w = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    fused, plain = make_optimizer([fused_w], 1e-2), torch.optim.Adam([plain_w], lr=1e-2)
    assert fused.defaults["fused"]
    for step in range(5):
        g = torch.randn(30, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(step + 1))
        fused_w.grad, plain_w.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    assert not torch.equal(fused_w, w)
    torch.testing.assert_close(fused_w, plain_w, rtol=1e-12, atol=1e-12)
