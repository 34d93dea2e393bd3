"""Spike encoders: static images [B, H, W] -> time-first spike tensors [T, B, C, H', W'].

All encoders are deterministic given a torch.Generator (rate coding is the only random
one); on CPU the same seed gives bit-identical output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._common import check_batch, check_num_steps, check_positive, to_unit
from .saccade import CONTRAST, SACCADE_MS, SUBSTEPS, saccade_events, saccade_frames, sensor_shape

__all__ = [
    "ENCODERS",
    "LATENCY_MODES",
    "Encoder",
    "latency_encode",
    "make_encoder",
    "rate_encode",
    "saccade_events",
    "saccade_frames",
    "to_unit",
]

ENCODERS = ("rate", "latency", "saccade")
LATENCY_MODES = ("linear", "log")


def rate_encode(
    images: torch.Tensor | np.ndarray,
    num_steps: int,
    generator: torch.Generator | None = None,
    gain: float = 1.0,
) -> torch.Tensor:
    """Bernoulli rate code: float32 0/1 spikes [T, B, 1, H, W].

    images: uint8 [B, H, W] or float intensities in [0, 1]. Each pixel spikes at each
    step independently with p = clamp(gain * intensity, 0, 1). generator=None uses
    torch's global generator.
    """
    x = check_batch(images)
    T = check_num_steps(num_steps)
    gain = check_positive("gain", gain)
    p = (gain * x).clamp_(0.0, 1.0).unsqueeze(1)  # [B, 1, H, W]
    # rand < p: p = 0 never spikes, p = 1 always does (rand is in [0, 1)).
    u = torch.rand((T, *p.shape), generator=generator, device=p.device)
    return (u < p).to(torch.float32)


def _rc_time(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Time for an RC node charging toward x to reach threshold, in units of tau."""
    return torch.log(x / (x - threshold))


def latency_encode(
    images: torch.Tensor | np.ndarray,
    num_steps: int,
    threshold: float = 0.01,
    mode: str = "linear",
    tau: float | None = None,
) -> torch.Tensor:
    """Time-to-first-spike code: float32 0/1 spikes [T, B, 1, H, W].

    Pixels with intensity x > threshold spike exactly once, brighter ones earlier
    (never later); pixels with x <= threshold never spike. The step is
      linear: t = round((1 - x) * (T - 1));
      log:    t = min(T - 1, round(tau * (r(x) - r(1)))), r(x) = ln(x / (x - threshold)),
              the time an RC node charging toward x, V(t) = x (1 - exp(-t / tau)), takes to
              reach the threshold, shifted so that x = 1 fires at step 0. tau is in steps;
              tau=None normalises: x = 1 maps to 0 and x = threshold + (1 - threshold) / 255
              (one 8-bit grey level above threshold) to T - 1; dimmer pixels above
              threshold, whose RC time grows without bound, are clipped to T - 1.
    round() rounds halves to even.
    """
    x = check_batch(images)
    T = check_num_steps(num_steps)
    if mode not in LATENCY_MODES:
        raise ValueError(f"latency mode must be one of {', '.join(LATENCY_MODES)}, got {mode!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise ValueError(f"threshold must be a number in [0, 1), got {threshold!r}")
    if not 0.0 <= float(threshold) < 1.0:  # also rejects NaN
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    threshold = float(threshold)
    fires = x > threshold
    if mode == "linear":
        t = torch.round((1.0 - x) * (T - 1))
    else:
        if threshold == 0.0:
            raise ValueError("log latency needs threshold > 0 (the RC time is 0 for all x)")
        r1 = math.log(1.0 / (1.0 - threshold))
        if tau is None:
            x_lo = threshold + (1.0 - threshold) / 255.0
            tau = (T - 1) / (math.log(x_lo / (x_lo - threshold)) - r1)
        else:
            tau = check_positive("tau", tau)
        # Where x <= threshold the log is undefined; those pixels are masked out below.
        safe = torch.where(fires, x, torch.ones_like(x))
        t = torch.round(tau * (_rc_time(safe, threshold) - r1)).clamp_(0, T - 1)
    steps = torch.arange(T, device=x.device, dtype=t.dtype).view(T, 1, 1, 1)
    spikes = (steps == t.unsqueeze(0)) & fires.unsqueeze(0)  # [T, B, H, W]
    return spikes.unsqueeze(2).to(torch.float32)


# Options each encoder accepts (besides num_steps and image_size), with defaults.
_DEFAULTS: dict[str, dict[str, object]] = {
    "rate": {"gain": 1.0},
    "latency": {"threshold": 0.01, "mode": "linear", "tau": None},
    "saccade": {"substeps": SUBSTEPS, "contrast": CONTRAST, "saccade_ms": SACCADE_MS},
}


@dataclass(frozen=True)
class Encoder:
    """A configured encoder: images uint8 [B, H, W] -> float32 [T, B, *input_shape].

    input_shape is per frame: (1, H, W) for rate/latency, (2, H + 6, W + 6) for
    saccade (OFF, ON event counts on the larger sensor). Build with make_encoder().
    """

    name: str
    num_steps: int
    image_size: tuple[int, int]
    input_shape: tuple[int, int, int]
    options: tuple[tuple[str, object], ...] = ()

    def __call__(
        self, images: torch.Tensor | np.ndarray, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Encode a batch; generator seeds the rate encoder (ignored by the others)."""
        shape = tuple(torch.as_tensor(images).shape)
        if len(shape) != 3 or shape[1:] != self.image_size:
            raise ValueError(
                f"{self.name} encoder expects images [B, {self.image_size[0]}, "
                f"{self.image_size[1]}], got {shape}"
            )
        opts = dict(self.options)
        if self.name == "rate":
            return rate_encode(images, self.num_steps, generator, **opts)
        if self.name == "latency":
            return latency_encode(images, self.num_steps, **opts)
        return saccade_frames(images, self.num_steps, **opts)


def make_encoder(
    name: str, num_steps: int, *, image_size: tuple[int, int] = (28, 28), **options: object
) -> Encoder:
    """Build an Encoder by name ("rate", "latency" or "saccade"), validating options.

    Options: rate: gain (> 0); latency: threshold (in [0, 1)), mode ("linear"/"log"),
    tau (> 0 or None); saccade: substeps (>= 1), contrast (> 0, natural-log units),
    saccade_ms (> 0). Unknown names or options, and bad values, raise ValueError.
    """
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; allowed: {', '.join(ENCODERS)}")
    num_steps = check_num_steps(num_steps)
    defaults = _DEFAULTS[name]
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for the {name} encoder; allowed: {', '.join(defaults)}"
        )
    size_ok = len(image_size) == 2 and all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in image_size
    )
    if not size_ok:
        raise ValueError(f"image_size must be (height, width) >= 1, got {image_size!r}")
    hw = (int(image_size[0]), int(image_size[1]))
    opts = {**defaults, **options}
    # Validate now (not at the first batch) by encoding one blank image.
    probe = torch.zeros(1, *hw, dtype=torch.uint8)
    if name == "rate":
        # A private generator, so that building an encoder leaves torch's global RNG alone.
        rate_encode(probe, 1, torch.Generator(), **opts)  # type: ignore[arg-type]
        input_shape = (1, *hw)
    elif name == "latency":
        latency_encode(probe, 1, **opts)  # type: ignore[arg-type]
        input_shape = (1, *hw)
    else:
        saccade_frames(probe[:, :1, :1], 1, **opts)  # type: ignore[arg-type]
        input_shape = (2, *sensor_shape(hw))
    return Encoder(name, num_steps, hw, input_shape, tuple(opts.items()))
