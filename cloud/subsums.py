"""Sub-sums: a round's shard sums grouped, decrypted apart, range-checked and combined.

Uploads add to one of a round's shards (cloud.rounds). At close the non-empty
shards are grouped into at most `subsums` sub-sums of at least the job's
minimum contributions each, so the key service never decrypts fewer than the
minimum. Each sub-sum is decrypted on its own and checked; one that fails is
dropped with its reason, and the round publishes the weighted mean of the
others. One crafted contribution can so spoil only the sub-sum it is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sdk.crypto.packing import mean_error_bound
from sdk.crypto.params import CryptoParams

FLOAT32_SLACK = 1e-6  # relative: the key service sends each sub-sum's mean as float32


def group_shards(counts: Mapping[int, int], minimum: int, target: int) -> list[list[int]]:
    """Shards (by index, with their contribution counts) grouped into at most `target` groups of >= `minimum`.

    Every non-empty shard is in exactly one group; the groups are as even as a
    greedy largest-first fill makes them, then any group under the minimum is
    merged into the smallest other group. Needs a total of at least `minimum`.
    """
    filled = sorted((shard for shard, count in counts.items() if count > 0), key=lambda s: (-counts[s], s))
    total = sum(counts[s] for s in filled)
    if minimum < 1 or target < 1 or total < minimum:
        raise ValueError(f"{total} contributions cannot make a group of {minimum}")
    groups: list[list[int]] = [[] for _ in range(max(1, min(target, total // minimum, len(filled))))]
    sizes = [0] * len(groups)
    for shard in filled:
        smallest = sizes.index(min(sizes))
        groups[smallest].append(shard)
        sizes[smallest] += counts[shard]
    while len(groups) > 1 and min(sizes) < minimum:
        small = sizes.index(min(sizes))
        shards, size = groups.pop(small), sizes.pop(small)
        other = sizes.index(min(sizes))
        groups[other] += shards
        sizes[other] += size
    return sorted(sorted(group) for group in groups)


def answer_problem(mean: np.ndarray, total_weight: int, contributors: int, counted: int, values: int,
                   params: CryptoParams) -> str | None:
    """Why a sub-sum's decryption cannot be `counted` honest contributions; None if it can.

    The key service's count must equal the contributions the database counted,
    the total weight must lie in [counted, max_weight * counted], and the mean
    must stay inside [-clip, clip] (plus the quantisation error bound).
    """
    if contributors != counted:
        return f"the key service counted {contributors} contributions, the database {counted}"
    if not counted <= total_weight <= params.max_weight * counted:
        return f"total weight {total_weight} is outside [{counted}, {params.max_weight * counted}]"
    if mean.shape != (values,):
        return f"the mean has {mean.size} values, the model {values}"
    limit = (params.clip + mean_error_bound(params, counted, total_weight)) * (1 + FLOAT32_SLACK)
    largest = float(np.max(np.abs(mean))) if np.all(np.isfinite(mean)) else float("inf")
    if largest > limit:
        return f"the mean leaves [-clip, clip]: its largest magnitude is {largest:.6g}, at most {limit:.6g} allowed"
    return None


@dataclass
class Outcome:
    """What became of one sub-sum: decrypted and kept (mean set), or dropped with the reason."""

    part: int
    contributors: int
    total_weight: int | None = None
    mean: np.ndarray | None = None
    dropped: str | None = None

    def record(self) -> dict:
        """What the round keeps of it (the mean is published, not stored per sub-sum)."""
        return {"part": self.part, "contributors": self.contributors, "total_weight": self.total_weight,
                "dropped": self.dropped}


def combine(kept: list[Outcome]) -> tuple[np.ndarray, int, int]:
    """(weighted mean, total weight, contributors) of the kept sub-sums: FedAvg over their contributions."""
    total = sum(o.total_weight for o in kept)
    weighted = sum(o.total_weight * o.mean.astype(np.float64) for o in kept)
    return (weighted / total).astype(np.float32), total, sum(o.contributors for o in kept)
