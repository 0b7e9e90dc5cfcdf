"""What the blueprints share: settings, database sessions, files, key service, metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from flask import current_app, g
from sqlalchemy.orm import Session, sessionmaker

from cloud.batches import UploadBatcher
from cloud.keyclient import KeyServiceClient
from cloud.metrics import Metrics
from cloud.settings import Settings
from cloud.store import FileStore


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker
    store: FileStore
    keyservice: KeyServiceClient
    metrics: Metrics
    batcher: UploadBatcher
    publish_soon: Callable[[int], None] | None = None  # starts publishing a round that just closed; None: the ticker does
    published: threading.Condition = field(default_factory=threading.Condition)  # notified when this process published


def services() -> Services:
    return current_app.extensions["fedwear"]


def session() -> Session:
    """The request's database session (closed when the request ends)."""
    if "db" not in g:
        g.db = services().sessions()
    return g.db


def close_session(_exc=None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()
