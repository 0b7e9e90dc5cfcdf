"""What the slots of an honest sum can hold: the range check of a decrypted aggregate.

An honest contribution has value slots in [0, levels], a weight slot in
[1, max_weight] and a count slot of 1. A sum of c of them therefore has value
slots of at most levels * c, a weight in [c, max_weight * c] and a count of c;
every slot then stays below 2^(slot_bits - guard_bits), so the guard bits are
zero and no slot carried into its neighbour. A crafted contribution (any
plaintext encrypted under the public key) shows up as a slot out of its bound.
"""

from __future__ import annotations

import numpy as np

from sdk.crypto.params import CryptoParams


def slot_problem(slots: np.ndarray, contributors: int, params: CryptoParams) -> str | None:
    """Why slot sums (values, then weight, then count) cannot be `contributors` honest contributions; None if they can."""
    values, weight, count = slots[:-2], int(slots[-2]), int(slots[-1])
    if count != contributors:
        return f"count slot holds {count}, the aggregate claims {contributors} contributions"
    if not contributors <= weight <= params.max_weight * contributors:
        return (f"weight slot holds {weight}, outside [{contributors}, {params.max_weight * contributors}] "
                f"for {contributors} contributions")
    top = params.levels * contributors
    over = np.flatnonzero(values > np.uint64(top))
    if over.size:
        return (f"{over.size} value slots exceed {top}, the most {contributors} contributions can sum to "
                f"(first: slot {int(over[0])})")
    return None
