"""What the aggregator sends the key service for a sub-sum of a job that requires attestation: the sub-sum's
contributions with their devices' signatures and payloads (cloud.signed_subsums), not their product."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from cloud.db import Contribution, Job, Round, ShardSum
from cloud.rounds import DEFAULT_SUBSUMS
from cloud.signed_subsums import body
from cloud.subsums import group_shards


def signed_subsum(sessions: sessionmaker, job: Job, round_: Round, part: int) -> bytes:
    """Sub-sum `part` of a closed round as signed contributions: its shards grouped as cloud.rounds.subsum_calls
    groups them, and every contribution in those shards. Reads in a transaction of its own, ended before the
    key service is called."""
    with sessions() as db:
        counts = dict(db.execute(select(ShardSum.shard, ShardSum.contributors)
                                 .where(ShardSum.round_id == round_.id, ShardSum.contributors > 0)).all())
        groups = group_shards(counts, job.config["min_devices"], job.config.get("subsums", DEFAULT_SUBSUMS))
        rows = db.execute(select(Contribution.device_id, Contribution.signature, Contribution.payload)
                          .where(Contribution.round_id == round_.id, Contribution.shard.in_(groups[part]))
                          .order_by(Contribution.id)).all()
        db.commit()
    kept = [row for row in rows if row.payload is not None and row.signature is not None]
    if len(kept) != sum(counts[shard] for shard in groups[part]):
        raise RuntimeError(f"round {round_.id}: {len(rows) - len(kept)} contributions of sub-sum {part} kept no "
                           f"signed payload, {len(rows)} of {sum(counts[s] for s in groups[part])} found")
    return body(kept)
