"""The command line, run in-process through ``asyncsnn.cli.main``."""

import json

import pytest

from asyncsnn.cli import main

TINY = [
    "--dataset",
    "builtin",
    "--num-steps",
    "6",
    "--architecture",
    "16",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--train-limit",
    "128",
    "--test-limit",
    "64",
    "--no-progress",
]


def test_train_then_eval_then_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "checkpoint.pt" in printed
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.json").is_file()

    assert main(["eval", str(out), "--limit", "32", "--no-progress"]) == 0
    doc = json.loads((out / "eval_builtin_test_sync.json").read_text())
    assert doc["metrics"]["samples"] == 32.0
    assert 0.0 <= doc["metrics"]["accuracy"] <= 1.0

    assert main(["train", *TINY, "--epochs", "2", "--out", str(out), "--resume", "--no-plots"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 2


def test_config_file_and_flag_override(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text('architecture = "8"\nepochs = 5\n')
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), *TINY, "--out", str(out), "--no-plots"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["architecture"] == "16"  # the flag wins over the file
    assert doc["config"]["epochs"] == 1


def test_unknown_config_key_is_one_clear_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 1\nlearning_rate: 0.1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "valid keys" in err and "Traceback" not in err


def test_missing_dataset_names_files_and_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASYNCSNN_DATA", raising=False)
    code = main(
        ["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path), "--out", str(tmp_path / "x")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_data_command_lists_builtin_and_missing(tmp_path, capsys):
    assert main(["data", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "builtin/train" in out and "available" in out
    assert "mnist/train" in out and "missing" in out


def test_train_async_then_eval_with_either_engine(tmp_path, capsys):
    out = tmp_path / "async"
    args = ["train", *TINY, "--num-steps", "3", "--train-limit", "64", "--test-limit", "16",
            "--engine", "async", "--scheduler", "momentum", "--group-size", "8", "--bias", "false",
            "--out", str(out), "--no-plots"]  # fmt: skip
    assert main(args) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["engine"] == "async" and doc["config"]["scheduler"] == "momentum"
    assert "micro_steps" in doc["test"] and doc["test"]["micro_steps"] > 0
    assert main(["eval", str(out), "--limit", "16", "--engine", "sync", "--no-progress"]) == 0
    sync_doc = json.loads((out / "eval_builtin_test_sync.json").read_text())
    assert "micro_steps" not in sync_doc["metrics"]
    assert main(["eval", str(out), "--limit", "16", "--engine", "async", "--scheduler", "layer",
                 "--group-size", "64", "--no-progress"]) == 0  # fmt: skip
    async_doc = json.loads((out / "eval_builtin_test_async.json").read_text())
    assert async_doc["config"]["scheduler"] == "layer"
    # layer scheduler with whole layers reproduces the synchronous run exactly (bias-free network)
    for key in ("accuracy", "spikes", "synops"):
        assert async_doc["metrics"][key] == sync_doc["metrics"][key], key


GAMMA = ["--model", "gamma", "--dataset", "japanese-vowels", "--architecture", "16", "--series-step", "3",
         "--loss-start", "6", "--gamma-threshold", "0.2", "--batch-size", "16", "--train-limit", "90",
         "--test-limit", "45", "--lr", "0.02", "--no-progress", "--no-plots"]  # fmt: skip


def test_gamma_online_training_learns_and_evaluates_at_a_finer_dt(tmp_path, capsys, write_fake_vowels):
    write_fake_vowels(tmp_path / "data" / "japanese-vowels")
    out = tmp_path / "run"
    args = ["train", *GAMMA, "--training", "online", "--epochs", "3", "--data-dir", str(tmp_path / "data")]
    assert main([*args, "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["config"]["model"] == "gamma" and doc["config"]["training"] == "online"
    assert doc["test"]["accuracy"] > 0.5  # chance is 1/9
    assert doc["test"]["spike_rate_hz"] > 0

    assert main(["eval", str(out), "--dt", "0.5", "--no-progress"]) == 0
    fine = json.loads((out / "eval_japanese-vowels_test_sync_dt0.5.json").read_text())
    assert fine["dt"] == 0.5 and fine["metrics"]["samples"] == 370.0
    assert 0.0 <= fine["metrics"]["accuracy"] <= 1.0


def test_gamma_online_and_bptt_training_take_the_same_steps(tmp_path, capsys, write_fake_vowels):
    """Online training computes the BPTT gradient: one epoch either way gives the same losses."""
    write_fake_vowels(tmp_path / "data" / "japanese-vowels")
    losses = {}
    for mode in ("online", "bptt"):
        out = tmp_path / mode
        args = ["train", *GAMMA, "--training", mode, "--epochs", "1", "--data-dir", str(tmp_path / "data")]
        assert main([*args, "--out", str(out)]) == 0
        doc = json.loads((out / "metrics.json").read_text())
        losses[mode] = (doc["history"][0]["train"]["loss"], doc["test"]["loss"])
    assert losses["online"] == pytest.approx(losses["bptt"], rel=1e-4)


def test_gamma_configuration_errors_are_clear(tmp_path, capsys):
    assert main(["train", "--model", "gamma", "--engine", "async", "--out", str(tmp_path / "x")]) == 2
    assert "time-stepped" in capsys.readouterr().err
    assert main(["train", "--training", "online", "--out", str(tmp_path / "x")]) == 2
    assert "'online' is for model 'gamma'" in capsys.readouterr().err
    assert main(["train", "--model", "gamma", "--gamma-tau", "5,-1", "--out", str(tmp_path / "x")]) == 2
    assert "gamma_tau" in capsys.readouterr().err


def test_data_fetches_japanese_vowels_from_a_local_wheel(tmp_path, capsys, write_fake_vowels):
    import zipfile

    source = tmp_path / "source"
    write_fake_vowels(source)
    wheel = tmp_path / "aeon-1.6.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path in source.iterdir():
            zf.write(path, f"aeon/datasets/data/JapaneseVowels/{path.name}")
    data_dir = tmp_path / "data"
    assert main(["data", "--data-dir", str(data_dir)]) == 0
    assert "japanese-vowels/train  missing" in capsys.readouterr().out
    assert (
        main(["data", "--fetch", "japanese-vowels", "--wheel", str(wheel), "--data-dir", str(data_dir)]) == 0
    )
    printed = capsys.readouterr().out
    assert "japanese-vowels/test   available  370 series, 12 channels" in printed
    assert (data_dir / "japanese-vowels" / "JapaneseVowels_TRAIN.ts").is_file()
