"""Configuration of the aggregation service, from environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


def _int(env, name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def database_url(url: str) -> str:
    """A SQLAlchemy URL; postgresql:// and postgres:// use the installed psycopg (3) driver."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme):]
    return url


@dataclass(frozen=True)
class Settings:
    """Everything the aggregator needs; `from_env` reads FEDWEAR_* variables."""

    data_dir: Path
    database_url: str
    admin_token: str
    keyservice_url: str
    keyservice_token: str
    max_upload_bytes: int = 64 * 1024 * 1024
    max_json_bytes: int = 64 * 1024
    tick_seconds: float = 1.0
    enrolments_per_address: int = 20  # enrolment attempts per client address and minute
    enrolments_per_token: int = 60  # enrolment attempts per token and minute
    trusted_proxies: int = 0  # reverse proxies in front whose X-Forwarded-For names the client
    publish_at_close: bool = True
    threads: int = 8  # request threads per worker process (gunicorn's FEDWEAR_THREADS)

    @staticmethod
    def from_env(env=None) -> "Settings":
        env = os.environ if env is None else env
        data_dir = Path(env.get("FEDWEAR_DATA_DIR", "fedwear-data")).resolve()
        admin_token = env.get("FEDWEAR_ADMIN_TOKEN", "")
        if len(admin_token) < 16:
            raise ConfigError("FEDWEAR_ADMIN_TOKEN must be set to a secret of at least 16 characters")
        keyservice_token = env.get("FEDWEAR_KEYSERVICE_TOKEN", "")
        if len(keyservice_token) < 16:
            raise ConfigError("FEDWEAR_KEYSERVICE_TOKEN must be set to a secret of at least 16 characters")
        return Settings(
            data_dir=data_dir,
            database_url=database_url(env.get("FEDWEAR_DATABASE_URL", f"sqlite:///{data_dir / 'fedwear.db'}")),
            admin_token=admin_token,
            keyservice_url=env.get("FEDWEAR_KEYSERVICE_URL", "http://127.0.0.1:8765").rstrip("/"),
            keyservice_token=keyservice_token,
            max_upload_bytes=_int(env, "FEDWEAR_MAX_UPLOAD_BYTES", 64 * 1024 * 1024),
            max_json_bytes=_int(env, "FEDWEAR_MAX_JSON_BYTES", 64 * 1024),
            tick_seconds=float(env.get("FEDWEAR_TICK_SECONDS", "1.0")),
            enrolments_per_address=_int(env, "FEDWEAR_ENROLMENTS_PER_ADDRESS", 20),
            enrolments_per_token=_int(env, "FEDWEAR_ENROLMENTS_PER_TOKEN", 60),
            trusted_proxies=_int(env, "FEDWEAR_TRUSTED_PROXIES", 0, minimum=0),
            publish_at_close=env.get("FEDWEAR_PUBLISH_AT_CLOSE", "1") != "0",
            threads=_int(env, "FEDWEAR_THREADS", 8),
        )
