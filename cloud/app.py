"""Application factory of the aggregation service."""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask, g, request

from cloud import logs
from cloud.api import admin, device, ops
from cloud.api.errors import ApiError, install_error_handlers
from cloud.batches import UploadBatcher
from cloud.db import Job, Round, make_engine, make_sessionmaker
from cloud.keyclient import KeyServiceClient
from cloud.metrics import Metrics
from cloud.rounds import Decrypt, close_due_rounds, discard_ended_sums, publish_closed_rounds, publish_round
from cloud.services import Services, close_session
from cloud.settings import Settings
from cloud.store import FileStore

log = logging.getLogger("fedwear.cloud")


def create_app(settings: Settings | None = None, background: bool = False) -> Flask:
    """The Flask app; `background` starts the thread that closes and publishes rounds."""
    settings = settings or Settings.from_env()
    if background:
        logs.configure()
    app = Flask("fedwear-cloud")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url, settings.threads)
    store = FileStore(settings.data_dir)
    svc = Services(
        settings=settings,
        sessions=make_sessionmaker(engine),
        store=store,
        keyservice=KeyServiceClient(settings.keyservice_url, settings.keyservice_token),
        metrics=Metrics(),
        batcher=UploadBatcher(store),
    )
    svc.metrics.watch_jobs(svc.sessions)
    if settings.publish_at_close:
        svc.publish_soon = _publisher(svc)
    app.extensions["fedwear"] = svc
    install_error_handlers(app)
    app.register_blueprint(admin.bp)
    app.register_blueprint(device.bp)
    app.register_blueprint(ops.bp)
    app.teardown_appcontext(close_session)
    _instrument(app, svc, settings)
    if background:
        threading.Thread(target=_tick_forever, args=(svc,), name="fedwear-rounds", daemon=True).start()
    return app


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def _instrument(app: Flask, svc: Services, settings: Settings) -> None:
    @app.before_request
    def _read_body_first():
        """Limits and reads the body before any view touches the database.

        A JSON body is limited to max_json_bytes, any other to
        max_upload_bytes, whether it comes with a Content-Length or chunked.
        Any body but a multipart form (which the admin's job creation parses
        before its first query) is read in full here, so that no database
        transaction waits on a slow sender.
        """
        g.started = time.perf_counter()
        if "\0" in request.path:
            raise ApiError(400, "invalid_request", "the URL must not contain NUL bytes")
        g.body_limit = settings.max_json_bytes if request.is_json else settings.max_upload_bytes
        request.max_content_length = g.body_limit + 1  # a chunked body stops silently at the limit: see past it
        if request.mimetype != "multipart/form-data" and len(request.get_data()) > g.body_limit:
            raise ApiError(413, "request_entity_too_large",
                           f"request body is larger than the limit of {g.body_limit} bytes")

    @app.after_request
    def _log(response):
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        method = request.method if request.method in METHODS else "other"  # bounded label values
        svc.metrics.requests.labels(method, request.endpoint or "none", response.status_code).observe(seconds)
        log.info("request", extra={"fields": {
            "method": request.method, "path": request.path, "status": response.status_code,
            "ms": round(seconds * 1000, 2), "bytes_in": request.content_length or 0}})
        return response


def tick(svc: Services) -> None:
    """One pass: close rounds past their deadline, decrypt and publish every closing round at once, then remove the
    sums of rounds that ended."""
    with svc.sessions() as db:
        close_due_rounds(db)
    _published(svc, publish_closed_rounds(svc.sessions, svc.store, _counting_errors(svc)))
    with svc.sessions() as db:
        discard_ended_sums(db, svc.store)


def _published(svc: Services, count: int) -> None:
    """Counts rounds this process published and wakes its long-polls at once (others find them at their next read)."""
    if count:
        svc.metrics.published.inc(count)
        with svc.published:
            svc.published.notify_all()


def _publisher(svc: Services):
    """Starts decrypting and publishing a round in a thread of its own: the upload that filled it returns at once."""
    def publish(round_id: int) -> None:
        try:
            _published(svc, int(publish_round(svc.sessions, svc.store, _counting_errors(svc), round_id)))
        except Exception:  # the next tick retries
            log.exception("publishing at close failed")

    def publish_soon(round_id: int) -> None:
        threading.Thread(target=publish, args=(round_id,), name=f"fedwear-publish-{round_id}", daemon=True).start()
    return publish_soon


def _counting_errors(svc: Services) -> Decrypt:
    """The key service's decrypt, counting its failures per job."""
    def decrypt(subsum: bytes, job: Job, round_: Round, part: int):
        try:
            return svc.keyservice.decrypt(subsum, job, round_, part)
        except Exception:
            svc.metrics.keyservice_errors.labels(job.id).inc()
            raise
    return decrypt


def _tick_forever(svc: Services) -> None:
    while True:
        try:
            tick(svc)
        except Exception:  # keep the loop alive; the next tick retries
            log.exception("round tick failed")
        time.sleep(svc.settings.tick_seconds)
