import pytest
import torch

pytest.importorskip("matplotlib")

from asyncsnn.plots import plot_raster, plot_training  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_and_raster_figures_are_written(tmp_path):
    stats = {"loss": 1.0, "accuracy": 0.5, "spikes": 10.0, "spikes_std": 1.0}
    history = [{"epoch": e, "train": stats, "test": stats} for e in (1, 2, 3)]
    p = plot_training(history, tmp_path / "sub" / "training.png")
    assert p.read_bytes().startswith(PNG)
    spikes = [torch.rand(20, 30) < 0.2, torch.rand(20, 10) < 0.1]
    r = plot_raster(spikes, tmp_path / "raster.png", title="x")
    assert r.read_bytes().startswith(PNG) and r.stat().st_size > 1000
