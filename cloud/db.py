"""Storage schema (SQLAlchemy): jobs, rounds and their shard sums, devices, tokens, contributions, selections."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # running, stopping, stopped, aborted, finished (cloud.lifecycle)
    status: Mapped[str] = mapped_column(String(16), default="running")
    config: Mapped[dict] = mapped_column(JSON)
    crypto: Mapped[dict] = mapped_column(JSON)
    public_key: Mapped[str] = mapped_column(Text)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    shared_values: Mapped[int] = mapped_column(Integer)
    transition_classes: Mapped[int] = mapped_column(Integer, default=0)  # K when uploads carry transition counts
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("job_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    version: Mapped[int] = mapped_column(Integer)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    round_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Round(Base):
    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[int] = mapped_column(Integer)
    # open -> closing -> published, or open -> failed
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    deadline: Mapped[datetime] = mapped_column(DateTime)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    bytes_out: Mapped[int] = mapped_column(Integer, default=0)
    total_weight: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # after decryption: one entry per sub-sum, {"part", "contributors", "total_weight", "dropped"} (cloud.subsums)
    subsums: Mapped[list | None] = mapped_column(JSON, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    publishing_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # a publisher's claim
    published_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class ShardSum(Base):
    """One shard of a round's encrypted sum: the product of the contributions added to it.

    A round has a fixed number of shards (cloud.lifecycle.SHARDS), each with a
    fixed capacity, the capacities summing to the round's max_devices. An
    upload locks one shard with room, so uploads to one round add in parallel
    and no row is written by every upload; the round's contributors are the
    sum of its shards' (cloud.rounds.round_tallies). At close the shards are
    grouped into sub-sums (cloud.subsums) that the key service decrypts apart.
    The sum itself is a file of the data directory, one per generation
    (cloud.store.FileStore.sum_file): the row says which generation is current.
    """

    __tablename__ = "shard_sums"
    __table_args__ = (UniqueConstraint("round_id", "shard"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    shard: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    contributors: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)  # its sum's file (cloud.store); 0 while empty


class EnrolmentToken(Base):
    __tablename__ = "enrolment_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    max_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    token_id: Mapped[str] = mapped_column(String(32))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # base64 DER SubjectPublicKeyInfo of the device's EC P-256 key (sdk.attestation), or None
    device_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Contribution(Base):
    __tablename__ = "contributions"
    __table_args__ = (UniqueConstraint("round_id", "device_id"), UniqueConstraint("round_id", "payload_sha256"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    shard: Mapped[int] = mapped_column(Integer)
    payload_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict] = mapped_column(JSON)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)  # verified X-FedWear-Signature (attested jobs)
    # attested jobs: the payload, for the key service to verify and multiply itself (cloud.signed_subsums); kept
    # until the round is published or failed; deferred, so that loading a contribution does not load it
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DeviceReport(Base):
    __tablename__ = "device_reports"
    __table_args__ = (UniqueConstraint("round_id", "device_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    windows: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    reported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Selection(Base):
    """A device the service selected for a round when it checked in (cloud.selection)."""

    __tablename__ = "selections"
    __table_args__ = (UniqueConstraint("round_id", "device_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    selected_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SelectionCount(Base):
    """How many devices a round selected: one row per round, updated conditionally, so that concurrent
    check-ins never select more than the round's quota (cloud.selection)."""

    __tablename__ = "selection_counts"
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    selected: Mapped[int] = mapped_column(Integer, default=0)


class EnrolmentAttempts(Base):
    """Enrolment attempts per key (a client address or a token hash) and minute (cloud.enrolment_limits)."""

    __tablename__ = "enrolment_attempts"
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # minutes since the epoch
    count: Mapped[int] = mapped_column(Integer, default=0)


class JobEvent(Base):
    """A job's status changes and operator actions, with their reasons (cloud.lifecycle)."""

    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    round_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def make_engine(url: str, threads: int = 8) -> Engine:
    """An engine whose write transactions serialise where they must.

    SQLite gets BEGIN IMMEDIATE (one writer at a time, across processes);
    PostgreSQL rows are locked with SELECT ... FOR UPDATE where it matters
    (an upload locks one shard of its round with room, SKIP LOCKED). The pool
    holds a connection for each of the worker's `threads` and two more (the
    round ticker, a publisher), so no request waits for a connection.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection, _record):
            dbapi_connection.isolation_level = None
            if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # kept in the file
                dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=FULL")

        @event.listens_for(engine, "begin")
        def _begin_immediate(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    else:
        engine = create_engine(url, pool_size=threads + 2, max_overflow=20, pool_pre_ping=True)
    Base.metadata.create_all(engine)
    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
