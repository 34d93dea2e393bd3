"""N-MNIST-style conversion of static images to DVS events by simulated saccades.

Model (after Orchard et al. 2015, "Converting static image datasets to spiking
neuromorphic datasets using saccades", Front. Neurosci. 9:437, which recorded N-MNIST
by moving an ATIS camera in three saccades in front of a screen showing each digit):

* Geometry. An H x W image (28 x 28 for MNIST) sits on an (H + 6) x (W + 6) sensor
  (34 x 34), centred, i.e. 3 px from each edge. It is then moved along a triangle in
  three straight, constant-speed saccades of ``saccade_ms`` each (300 ms in total):
  (0, 0) -> (+2, +2) -> (-2, +2) -> (0, 0) px, as (dx, dy) with x to the right and y
  down. This isosceles triangle (our choice; the paper's exact path differs) has one
  horizontal and two diagonal legs, so edges of every orientation see motion, and at
  most 2 px displacement keeps the digit on the sensor. Each saccade is sampled at
  ``substeps`` positions; the shifted image is bilinearly interpolated on the sensor
  grid (zero outside the image).
* Pixels. An idealised DVS pixel (no noise, no refractory period) tracks the log
  intensity L = log(EPS + I), I in [0, 1], EPS = 0.1 (a floor for dark pixels, like a
  sensor's dark current). Its reference level starts at L(t = 0). At each sample it
  emits n_on = floor((L - ref) / C) ON events if that is positive, or
  n_off = floor((ref - L) / C) OFF events if that is positive, and moves ref by C times
  the net count. C = ``contrast`` (default 0.25 in natural-log units, about a 28 %
  intensity change; real DVS thresholds are 0.1 to 0.5). With these settings an MNIST
  digit gives about 4,400 events on average (2,700 to 6,900 over 2,000 MNIST test
  digits), close to real N-MNIST's ~4,000.
* Time. Sample k = 1..S (S = 3 * substeps) covers ((k - 1) dt, k dt], dt = 300 ms / S;
  its events get the timestamp floor((k - 1/2) dt) in microseconds (the middle of the
  interval), all of them at that same instant.
* Polarity channel 0 = OFF (darker), 1 = ON (brighter).

The thresholds are evaluated as intensity ratios against precomputed levels exp(C n)
rather than by taking a log per pixel, so each sample needs only exactly rounded
arithmetic and comparisons: the counts of an image do not depend on the batch it is
in or on which vectorised code path the CPU takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ._common import check_batch, check_num_steps, check_positive
from .events import EVENT_DTYPE, time_bins

SENSOR_MARGIN = 3  # px of sensor around the image at rest (28 + 2 * 3 = 34)
TRIANGLE = ((0.0, 0.0), (2.0, 2.0), (-2.0, 2.0))  # saccade corners (dx, dy) in px
SACCADE_MS = 100.0
SUBSTEPS = 30
CONTRAST = 0.25
EPS = 0.1
_PAD = SENSOR_MARGIN + 3  # canvas padding: room for shifts in [-3, 3) px plus 1 for bilinear


def _check_options(substeps: int, contrast: float, saccade_ms: float) -> tuple[int, float, int]:
    if isinstance(substeps, bool) or not isinstance(substeps, (int, np.integer)) or substeps < 1:
        raise ValueError(f"substeps must be an integer >= 1, got {substeps!r}")
    contrast = check_positive("contrast", contrast)
    saccade_us = round(check_positive("saccade_ms", saccade_ms) * 1000)
    if saccade_us < 1:
        raise ValueError(f"saccade_ms must be at least 0.001 (1 us), got {saccade_ms!r}")
    return int(substeps), contrast, saccade_us


def sensor_shape(image_hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the sensor for an image of (height, width): 6 px larger."""
    return image_hw[0] + 2 * SENSOR_MARGIN, image_hw[1] + 2 * SENSOR_MARGIN


def step_timestamps(substeps: int = SUBSTEPS, saccade_ms: float = SACCADE_MS) -> np.ndarray:
    """int64 [S] timestamp (us) of each sample step, S = 3 * substeps (mid-interval)."""
    substeps, _, saccade_us = _check_options(substeps, 1.0, saccade_ms)
    S = len(TRIANGLE) * substeps
    k = np.arange(1, S + 1, dtype=np.int64)
    return ((2 * k - 1) * (len(TRIANGLE) * saccade_us)) // (2 * S)


def _positions(substeps: int) -> list[tuple[float, float]]:
    """Displacement (dx, dy) at sample 0..S; sample 0 is the rest position."""
    pos = [TRIANGLE[0]]
    for i, (x0, y0) in enumerate(TRIANGLE):
        x1, y1 = TRIANGLE[(i + 1) % len(TRIANGLE)]
        for j in range(1, substeps + 1):
            a = j / substeps
            pos.append((x0 + a * (x1 - x0), y0 + a * (y1 - y0)))
    return pos


def _shifted(canvas: torch.Tensor, dx: float, dy: float, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear view of the padded images [B, H + 2 PAD, W + 2 PAD] moved by (dx, dy).

    Sensor pixel s sees image coordinate s - MARGIN - d; with d = n + f (n integer,
    0 <= f < 1) that mixes canvas pixels s + PAD - MARGIN - n and the one before.
    """
    Hs, Ws = hw
    off = _PAD - SENSOR_MARGIN
    nx, ny = math.floor(dx), math.floor(dy)
    fx, fy = dx - nx, dy - ny
    ax, ay = off - nx, off - ny
    cols = canvas[:, :, ax : ax + Ws] * (1.0 - fx) + canvas[:, :, ax - 1 : ax - 1 + Ws] * fx
    return cols[:, ay : ay + Hs, :] * (1.0 - fy) + cols[:, ay - 1 : ay - 1 + Hs, :] * fy


def _iter_net_counts(
    unit: torch.Tensor, substeps: int, contrast: float
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield (step index k - 1, int32 [B, Hs, Ws] net event count) for each sample step.

    A positive count n means n ON events, a negative one -n OFF events: the reference
    moves monotonically within a step, so one pixel never emits both at once.
    """
    B, H, W = unit.shape
    hw = sensor_shape((H, W))
    canvas = unit.new_zeros(B, H + 2 * _PAD, W + 2 * _PAD)
    canvas[:, _PAD : _PAD + H, _PAD : _PAD + W] = unit
    # Intensity ratios exp(C n), n in [-N, N]: enough for (EPS + 1) / EPS either way.
    N = math.ceil(math.log((1.0 + EPS) / EPS) / contrast) + 1
    levels = torch.tensor(
        [math.exp(contrast * n) for n in range(-N, N + 1)], dtype=unit.dtype, device=unit.device
    )
    positions = _positions(substeps)
    base = EPS + _shifted(canvas, *positions[0], hw)
    level = torch.zeros(B, *hw, dtype=torch.int32, device=unit.device)  # ref = L(0) + C level
    for k, (dx, dy) in enumerate(positions[1:]):
        ratio = (EPS + _shifted(canvas, dx, dy, hw)) / base  # exp(L - L(0))
        # floor and ceil of d = (L - L(0)) / C, by counting the levels below the ratio.
        lo = torch.searchsorted(levels, ratio, right=True, out_int32=True) - (N + 1)
        hi = torch.searchsorted(levels, ratio, right=False, out_int32=True) - N
        # The rule "n_on = floor(d - level) if > 0, n_off = floor(level - d) if > 0"
        # leaves the level alone when lo <= level <= hi, else moves it to lo (up) or hi (down).
        new_level = torch.maximum(torch.minimum(level, hi), lo)
        yield k, new_level - level
        level = new_level


def saccade_frames(
    images: torch.Tensor | np.ndarray,
    num_steps: int,
    *,
    substeps: int = SUBSTEPS,
    contrast: float = CONTRAST,
    saccade_ms: float = SACCADE_MS,
) -> torch.Tensor:
    """Saccade events of a batch binned into frames: float32 [T, B, 2, H + 6, W + 6].

    images: uint8 [B, H, W] or float in [0, 1]. Frame i counts the events with
    timestamp in [i, i + 1) * D / T, D = 3 * saccade_ms (300 ms), channel 0 = OFF,
    1 = ON; these are exactly the events saccade_events() returns for each image.
    Computed on the images' device, one vectorised pass per sample step.
    """
    unit = check_batch(images)
    T = check_num_steps(num_steps)
    substeps, contrast, saccade_us = _check_options(substeps, contrast, saccade_ms)
    bins = time_bins(step_timestamps(substeps, saccade_ms), T, len(TRIANGLE) * saccade_us)
    B, H, W = unit.shape
    frames = torch.zeros(T, B, 2, *sensor_shape((H, W)), dtype=torch.float32, device=unit.device)
    for k, net in _iter_net_counts(unit, substeps, contrast):
        frame = frames[int(bins[k])]
        frame[:, 0] -= net.clamp(max=0)
        frame[:, 1] += net.clamp(min=0)
    return frames


def saccade_events(
    image: torch.Tensor | np.ndarray,
    *,
    substeps: int = SUBSTEPS,
    contrast: float = CONTRAST,
    saccade_ms: float = SACCADE_MS,
) -> np.ndarray:
    """Events of one image [H, W] (uint8, or float in [0, 1]) as a structured array.

    dtype EVENT_DTYPE (x, y, t in us, p with 0 = OFF, 1 = ON), sorted by t, then y, x,
    p. A pixel with k events at a sample step gives k identical events at that step's
    timestamp. Coordinates are on the (H + 6) x (W + 6) sensor.
    """
    x = torch.as_tensor(image)
    if x.dim() != 2:
        raise ValueError(f"image must have shape [H, W], got {tuple(x.shape)}")
    unit = check_batch(x[None], "image")
    substeps, contrast, _ = _check_options(substeps, contrast, saccade_ms)
    stamps = step_timestamps(substeps, saccade_ms)
    chunks = []
    for k, net in _iter_net_counts(unit, substeps, contrast):
        # [H, W, 2] (OFF, ON counts) so that nonzero() lists pixels in (y, x, p) order.
        c = torch.stack((-net[0].clamp(max=0), net[0].clamp(min=0)), dim=-1).cpu()
        idx = torch.nonzero(c).numpy()
        if idx.size == 0:
            continue
        reps = c[idx[:, 0], idx[:, 1], idx[:, 2]].numpy()
        chunk = np.empty(int(reps.sum()), dtype=EVENT_DTYPE)
        chunk["y"] = np.repeat(idx[:, 0], reps)
        chunk["x"] = np.repeat(idx[:, 1], reps)
        chunk["p"] = np.repeat(idx[:, 2], reps)
        chunk["t"] = stamps[k]
        chunks.append(chunk)
    return np.concatenate(chunks) if chunks else np.empty(0, dtype=EVENT_DTYPE)
