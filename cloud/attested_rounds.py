"""What the aggregator sends the key service for a sub-sum of a job that requires attestation: the sub-sum's
contributions with their devices' signatures and payloads (cloud.signed_subsums), not their product."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db import Contribution
from cloud.signed_subsums import body


def signed_subsum(session: Session, round_id: int, shards: list[int], expected: int) -> bytes:
    """The signed contributions of a closed round's shards `shards`, which hold `expected` contributions, as the
    body of a decryption (cloud.signed_subsums.body)."""
    rows = session.execute(select(Contribution.device_id, Contribution.signature, Contribution.payload)
                           .where(Contribution.round_id == round_id, Contribution.shard.in_(shards))
                           .order_by(Contribution.id)).all()
    kept = [row for row in rows if row.payload is not None and row.signature is not None]
    if len(kept) != expected:
        raise RuntimeError(f"round {round_id}: {len(rows) - len(kept)} contributions of shards {shards} kept no "
                           f"signed payload, {len(rows)} of {expected} found")
    return body(kept)
