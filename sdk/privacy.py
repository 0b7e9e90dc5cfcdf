"""Client-side differential privacy: clip a device's update in L2 norm, add its share of Gaussian noise.

Noise model: distributed DP. With a job's `privacy` block {clip_norm C,
noise_multiplier z, delta} and the job's `min_devices` m, every device clips
its shared-layer update to L2 norm C and adds noise N(0, (z*C)^2 / m) to each
value before encryption. Secure aggregation means nobody sees one noisy
update; the decrypted sum of k >= m contributions carries noise of std
z*C*sqrt(k/m) >= z*C, which is the Gaussian mechanism with noise multiplier z
for a sum in which one device's update (L2 norm at most C) is replaced by zero.

If only h < m of a round's devices are honest (the others add no noise, or
know their own noise and subtract it), the sum's noise has std z*C*sqrt(h/m):
the guarantee is that of noise multiplier z*sqrt(h/m) (z/sqrt(m) when one is).
Whoever could decrypt a single contribution (aggregator and key service
together) sees it with noise multiplier z/sqrt(m).

Under privacy every contribution weighs the same (the codec's max_weight):
a window count would tell how much data a device holds, and weighting would
let one device's influence exceed C.

The noise must survive the codec: its per-device std must be at least
`MIN_STEPS` quantisation steps (so rounding changes its distribution
negligibly), and the codec's clip at least C + `CLIP_MARGIN` per-device stds
(so that clipping a noisy value to [-clip, clip] happens with probability at
most 2 * Phi(-10), about 1.5e-23 per value). A configuration that does not
meet both is refused.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

import numpy as np

from sdk.crypto.params import CryptoParams

MIN_STEPS = 10  # per-device noise std, in quantisation steps, at least
CLIP_MARGIN = 10  # codec clip at least clip_norm + this many per-device noise stds


class PrivacyError(ValueError):
    """A privacy configuration that cannot give its guarantee; the message names the field."""


@dataclass(frozen=True)
class PrivacySettings:
    """A job's DP setting: L2 clip norm C, noise multiplier z of the sum, and its delta."""

    clip_norm: float
    noise_multiplier: float
    delta: float

    @staticmethod
    def from_dict(raw: dict) -> "PrivacySettings":
        return PrivacySettings(float(raw["clip_norm"]), float(raw["noise_multiplier"]), float(raw["delta"]))

    def device_std(self, min_devices: int) -> float:
        """Std of the noise one device adds to each value: z * C / sqrt(m)."""
        return self.noise_multiplier * self.clip_norm / math.sqrt(min_devices)

    def required_clip(self, min_devices: int) -> float:
        """The smallest codec clip that leaves the noise room: C + CLIP_MARGIN device stds."""
        return self.clip_norm + CLIP_MARGIN * self.device_std(min_devices)

    def check(self, min_devices: int, quant_bits: int, clip: float) -> None:
        """Refuses (PrivacyError) a setting whose noise the codec would round away or cut off."""
        std = self.device_std(min_devices)
        step = 2 * clip / ((1 << quant_bits) - 1)
        if std < MIN_STEPS * step:
            raise PrivacyError(
                f"privacy.noise_multiplier: each device's noise std z*C/sqrt(min_devices) = {std:.3g} is under "
                f"{MIN_STEPS} quantisation steps ({MIN_STEPS * step:.3g} at crypto.quant_bits {quant_bits} and "
                f"crypto.clip {clip:g}); raise noise_multiplier or quant_bits, or lower crypto.clip")
        if clip < self.required_clip(min_devices):
            raise PrivacyError(
                f"crypto.clip: {clip:g} would cut off the noise; with privacy.clip_norm {self.clip_norm:g} and a "
                f"per-device noise std of {std:.3g} it must be at least {self.required_clip(min_devices):.4g}")


def clip_to_norm(update: np.ndarray, clip_norm: float) -> np.ndarray:
    """The update scaled down to L2 norm at most `clip_norm` (unchanged when within it)."""
    x = np.asarray(update, np.float64).reshape(-1)
    norm = float(np.linalg.norm(x))
    return x * (clip_norm / norm) if norm > clip_norm else x


def privatise(update: np.ndarray, settings: PrivacySettings, min_devices: int, params: CryptoParams,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """Clips the update to L2 norm C and adds this device's share N(0, (z*C)^2 / m) of the noise.

    An update with a non-finite value (training diverged) counts as zero: the device still sends its
    share of the noise, which the round's guarantee needs. The generator is seeded from the operating
    system's CSPRNG unless one is given.
    """
    settings.check(min_devices, params.quant_bits, params.clip)
    rng = rng or np.random.default_rng(secrets.randbits(128))
    update = np.asarray(update, np.float64)
    clipped = clip_to_norm(update if np.all(np.isfinite(update)) else np.zeros(update.size), settings.clip_norm)
    return clipped + rng.normal(0.0, settings.device_std(min_devices), clipped.size)


def prepare_update(plan: dict, update: np.ndarray, params: CryptoParams, samples: int) -> tuple[np.ndarray, int]:
    """The update and weight a device encrypts for a plan: privatised and of equal weight when the plan's
    `privacy` is set, else as trained, weighted by its number of samples."""
    privacy = plan.get("privacy")
    if privacy is None:
        return update, params.weight_of(samples)
    return privatise(update, PrivacySettings.from_dict(privacy), plan["min_devices"], params), params.max_weight
