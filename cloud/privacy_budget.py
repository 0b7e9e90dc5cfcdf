"""A job's differential-privacy budget, accounted with dp-accounting (docs/privacy.md).

Every round that releases a sum is one Gaussian mechanism with noise
multiplier z on a sum in which one device's update, of L2 norm at most C, is
replaced by zero (or added or removed: the same for an unsampled Gaussian).
A device contributes at most once per round, so composing the job's released
rounds bounds what the published models reveal about any one device's data.
The RDP accountant composes them; its epsilon is an upper bound, a little
above the exact Gaussian figure.

No amplification by sampling: which devices take part in a round depends on
who is charging, idle and first to upload, not on a random draw with a known
rate, so the accountant counts every released round at full cost.
"""

from __future__ import annotations

import dp_accounting
from dp_accounting.rdp import RdpAccountant

CALIBRATION_TOLERANCE = 1e-4  # relative error of a calibrated noise multiplier


def epsilon(noise_multiplier: float, rounds: int, delta: float) -> float:
    """Epsilon at `delta` after `rounds` releases of the Gaussian mechanism with this noise multiplier."""
    if rounds <= 0:
        return 0.0
    accountant = RdpAccountant()
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier), rounds)
    return float(accountant.get_epsilon(delta))


def calibrate(target_epsilon: float, rounds: int, delta: float) -> float:
    """The smallest noise multiplier whose `rounds` releases spend at most `target_epsilon` at `delta`."""
    if target_epsilon <= 0 or rounds < 1 or not 0 < delta < 1:
        raise ValueError(f"need epsilon > 0, rounds >= 1 and 0 < delta < 1; got {target_epsilon}, {rounds}, {delta}")
    z = float(dp_accounting.calibrate_dp_mechanism(
        RdpAccountant, lambda z: dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(z), rounds),
        target_epsilon, delta, dp_accounting.LowerEndpointAndGuess(1e-3, 1.0), tol=CALIBRATION_TOLERANCE))
    while epsilon(z, rounds, delta) > target_epsilon:  # the search may stop just on the wrong side
        z *= 1 + CALIBRATION_TOLERANCE
    return z


def budget(privacy: dict, released_rounds: int, planned_rounds: int) -> dict:
    """What a job with this `privacy` block has spent after `released_rounds`, and will after all its rounds."""
    z, delta = privacy["noise_multiplier"], privacy["delta"]
    return {**privacy, "released_rounds": released_rounds, "epsilon": round(epsilon(z, released_rounds, delta), 4),
            "epsilon_planned": round(epsilon(z, planned_rounds, delta), 4)}
