"""Rate limit on enrolment, per client address and per token, counted in the service's database.

The counters live in the database every worker already shares (one atomic upsert per key and
minute), so the limit holds across threads, worker processes and hosts without another service,
and the default single-machine setup (SQLite) needs nothing more. Enrolment is rare, so one small
write per attempt costs nothing a round would notice. Every attempt counts, refused ones too, so
guessing tokens is limited as well as enrolling many devices with one token.
"""

from __future__ import annotations

import math
import time

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.api.errors import ApiError
from cloud.db import EnrolmentAttempts

WINDOW_S = 60


def client_address(remote_addr: str, forwarded_for: str, trusted_proxies: int) -> str:
    """The client's address: the peer's, or behind `trusted_proxies` reverse proxies the one the
    outermost of them put in X-Forwarded-For (what a client writes there itself is ignored)."""
    if trusted_proxies:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return remote_addr


def _count(db: Session, key: str, minute: int) -> int:
    """Adds one attempt to the key's counter of this minute and returns the new count (atomic)."""
    table = EnrolmentAttempts.__table__
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(key=key, minute=minute, count=1)
    statement = statement.on_conflict_do_update(index_elements=[table.c.key, table.c.minute],
                                                set_={"count": table.c.count + 1}).returning(table.c.count)
    return db.execute(statement).scalar_one()


def check_enrolment_rate(db: Session, address: str, token_hash: str, per_address: int, per_token: int) -> None:
    """Counts one enrolment attempt; ApiError 429 (with Retry-After) when a limit is passed this minute.

    An address over its limit adds no token counter, so one address adds at most `per_address`
    rows a minute, whatever tokens it makes up.
    """
    now = time.time()
    minute = int(now // WINDOW_S)
    db.execute(delete(EnrolmentAttempts).where(EnrolmentAttempts.minute < minute))
    checks = ((f"address:{address}"[:80], per_address, "from this address"),
              (f"token:{token_hash}", per_token, "with this token"))
    for key, limit, what in checks:
        count = _count(db, key, minute)
        db.commit()
        if count > limit:
            retry_after = max(1, math.ceil((minute + 1) * WINDOW_S - now))
            raise ApiError(429, "enrolment_rate_limited",
                           f"too many enrolment attempts {what} (at most {limit} a minute); "
                           f"retry after {retry_after} s", {"Retry-After": str(retry_after)})
