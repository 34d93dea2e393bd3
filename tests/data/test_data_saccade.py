"""Saccade (N-MNIST-style) conversion and event binning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asyncsnn.data import (
    EVENT_DTYPE,
    events_to_frames,
    load_dataset,
    saccade_events,
    saccade_frames,
    step_timestamps,
)


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return load_dataset("builtin", "test").images[:6]


def reference_counts(image: np.ndarray, substeps: int = 30, contrast: float = 0.25) -> np.ndarray:
    """Independent float64 version of the documented model: int [S, 2, 34, 34] counts."""
    img = image.astype(np.float64) / 255
    corners = [(0.0, 0.0), (2.0, 2.0), (-2.0, 2.0), (0.0, 0.0)]
    path = [corners[0]] + [
        (x0 + j / substeps * (x1 - x0), y0 + j / substeps * (y1 - y0))
        for (x0, y0), (x1, y1) in zip(corners[:-1], corners[1:], strict=True)
        for j in range(1, substeps + 1)
    ]
    ys, xs = np.mgrid[0:34, 0:34]

    def pixel(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        inside = (yy >= 0) & (yy < 28) & (xx >= 0) & (xx < 28)
        return np.where(inside, img[yy.clip(0, 27), xx.clip(0, 27)], 0.0)

    def sensor(dx: float, dy: float) -> np.ndarray:
        u, v = xs - 3 - dx, ys - 3 - dy  # image coordinate seen by each sensor pixel
        x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
        fx, fy = u - x0, v - y0
        top = (1 - fx) * pixel(y0, x0) + fx * pixel(y0, x0 + 1)
        bottom = (1 - fx) * pixel(y0 + 1, x0) + fx * pixel(y0 + 1, x0 + 1)
        return (1 - fy) * top + fy * bottom

    log0 = np.log(0.1 + sensor(*path[0]))
    level = np.zeros((34, 34), dtype=np.int64)  # reference = log0 + contrast * level
    out = np.zeros((len(path) - 1, 2, 34, 34), dtype=np.int64)
    for k, (dx, dy) in enumerate(path[1:]):
        d = (np.log(0.1 + sensor(dx, dy)) - log0) / contrast - level
        n_on = np.maximum(np.floor(d), 0).astype(np.int64)
        n_off = np.maximum(np.floor(-d), 0).astype(np.int64)
        out[k, 0], out[k, 1] = n_off, n_on
        level += n_on - n_off
    return out


def test_matches_reference_model(digits: torch.Tensor) -> None:
    for image in digits[:3]:
        # With num_steps = S = 90 every frame holds exactly one sample step.
        frames = saccade_frames(image[None], 90)[:, 0]
        assert torch.equal(frames, torch.from_numpy(reference_counts(image.numpy())).float())


def test_event_counts_plausible(digits: torch.Tensor) -> None:
    totals = []
    for image in digits:
        events = saccade_events(image)
        assert events.dtype == EVENT_DTYPE
        on, off = int((events["p"] == 1).sum()), int((events["p"] == 0).sum())
        # The path is closed, so every pixel ends at its start level: ON and OFF balance.
        assert on == off > 0
        totals.append(len(events))
    assert 1500 <= min(totals) and max(totals) <= 8000
    assert 2500 <= np.mean(totals) <= 6000


def test_event_layout(digits: torch.Tensor) -> None:
    events = saccade_events(digits[0])
    order = np.lexsort((events["p"], events["x"], events["y"], events["t"]))
    assert np.array_equal(order, np.arange(len(events)))  # sorted by t, y, x, p
    assert set(np.unique(events["t"])) <= set(step_timestamps().tolist())
    assert 0 <= events["t"].min() and events["t"].max() < 300_000
    for field in ("x", "y"):
        assert 0 <= events[field].min() and events[field].max() <= 33
    stamps = step_timestamps()
    assert stamps[0] == 1666 and stamps[-1] == 298_333 and len(stamps) == 90


@pytest.mark.parametrize("num_steps", [1, 7, 30, 90, 200])
def test_events_and_frames_agree(digits: torch.Tensor, num_steps: int) -> None:
    image = digits[1]
    frames = saccade_frames(image[None], num_steps)
    assert frames.shape == (num_steps, 1, 2, 34, 34) and frames.dtype == torch.float32
    assert torch.equal(events_to_frames(saccade_events(image), num_steps), frames[:, 0])


def test_batch_independent(digits: torch.Tensor) -> None:
    batch = saccade_frames(digits, 30)
    for i in range(len(digits)):
        assert torch.equal(batch[:, i], saccade_frames(digits[i : i + 1], 30)[:, 0])
    assert torch.equal(batch, saccade_frames(digits.float() / 255, 30))


def test_digit_stays_on_sensor() -> None:
    white = torch.full((28, 28), 255, dtype=torch.uint8)
    events = saccade_events(white)
    assert len(events) > 0
    for field in ("x", "y"):
        assert events[field].min() >= 1 and events[field].max() <= 32


def test_blank_image_is_silent() -> None:
    assert len(saccade_events(torch.zeros(28, 28, dtype=torch.uint8))) == 0
    assert float(saccade_frames(torch.zeros(2, 28, 28, dtype=torch.uint8), 5).abs().sum()) == 0


def test_saccade_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        saccade_events(torch.zeros(1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        saccade_frames(torch.zeros(28, 28, dtype=torch.uint8), 5)
    with pytest.raises(ValueError, match="num_steps"):
        saccade_frames(torch.zeros(1, 28, 28, dtype=torch.uint8), 0)
    with pytest.raises(ValueError, match="NaN"):
        saccade_frames(torch.full((1, 28, 28), float("nan")), 5)
    with pytest.raises(ValueError, match="contrast"):
        saccade_events(torch.zeros(28, 28), contrast=-0.1)
    with pytest.raises(ValueError, match="substeps"):
        saccade_events(torch.zeros(28, 28), substeps=0)


def make_events(rows: list[tuple[int, int, int, int]]) -> np.ndarray:
    return np.array(rows, dtype=EVENT_DTYPE)


def test_events_to_frames_binning() -> None:
    events = make_events([(0, 0, 0, 1), (3, 2, 99, 0), (3, 2, 100, 0), (1, 1, 399, 1)])
    frames = events_to_frames(events, 4, sensor_size=(4, 3, 2), duration_us=400)
    assert frames.shape == (4, 2, 3, 4) and frames.dtype == torch.float32
    expected = torch.zeros(4, 2, 3, 4)
    expected[0, 1, 0, 0] = 1
    expected[0, 0, 2, 3] = 1
    expected[1, 0, 2, 3] = 1
    expected[3, 1, 1, 1] = 1
    assert torch.equal(frames, expected)


def test_events_to_frames_default_duration() -> None:
    early = make_events([(5, 5, 299_999, 1)])
    assert events_to_frames(early, 3)[2, 1, 5, 5] == 1  # 300 ms nominal: last bin
    late = make_events([(5, 5, 150_000, 1), (5, 5, 400_000, 0)])
    frames = events_to_frames(late, 2)  # duration stretched to 400,001 us
    assert frames[0, 1, 5, 5] == 1 and frames[1, 0, 5, 5] == 1
    assert torch.equal(events_to_frames(np.empty(0, EVENT_DTYPE), 3), torch.zeros(3, 2, 34, 34))


@pytest.mark.parametrize(
    "rows, kwargs, match",
    [
        ([(34, 0, 0, 0)], {}, "x spans"),
        ([(0, -1, 0, 0)], {}, "y spans"),
        ([(0, 0, 0, 2)], {}, "p spans"),
        ([(0, 0, -5, 0)], {}, ">= 0"),
        ([(0, 0, 500, 0)], {"duration_us": 500}, "beyond duration_us"),
        ([(0, 0, 5, 0)], {"num_steps": 0}, "num_steps"),
    ],
)
def test_events_to_frames_rejects(rows, kwargs: dict, match: str) -> None:
    kwargs = {"num_steps": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        events_to_frames(make_events(rows), **kwargs)


def test_events_to_frames_needs_fields() -> None:
    with pytest.raises(ValueError, match="fields x, y, t, p"):
        events_to_frames(np.zeros((3, 4)), 4)
