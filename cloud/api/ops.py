"""Operations: health, Prometheus metrics, OpenAPI document, dashboard."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud import dashboard
from cloud.api.errors import error_response
from cloud.api.openapi import build_document, documented
from cloud.api.responses import Health, Unhealthy, reply
from cloud.services import services, session

bp = Blueprint("ops", __name__)
log = logging.getLogger("fedwear.cloud")
DASHBOARD_USER = "admin"


@bp.get("/healthz")
@documented("Liveness and database check", responses={"200": ("healthy", Health),
                                                       "503": ("database unreachable", Unhealthy)})
def healthz():
    try:
        session().execute(text("SELECT 1"))
    except Exception:  # any database failure makes the service unhealthy; the details go to the log only
        log.exception("health check: database unreachable")
        return reply(Unhealthy(status="unhealthy", error="database_unreachable",
                               message="the database cannot be reached; see the server log"), 503)
    return reply(Health(status="ok"))


@bp.get("/metrics")
@documented("Prometheus metrics", produces="text/plain")
def metrics():
    return Response(generate_latest(services().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@documented("This document")
def openapi():
    return jsonify(build_document(current_app, "FedWear aggregation service", "2"))


def _is_operator(auth) -> bool:
    token = services().settings.admin_token
    user_ok = hmac.compare_digest((auth.username or "").encode(), DASHBOARD_USER.encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), token.encode())
    return user_ok and password_ok


@bp.get("/dashboard")
@documented(f"Operator dashboard (HTTP basic auth: user {DASHBOARD_USER}, password: the admin token)",
            auth="dashboard", produces="text/html", responses={"200": "HTML page", "401": "password required"})
def dashboard_page():
    auth = request.authorization
    if auth is None or auth.type != "basic" or not _is_operator(auth):
        return error_response(current_app, 401, "unauthorized", f"user {DASHBOARD_USER} and the admin token required",
                              {"WWW-Authenticate": 'Basic realm="fedwear"'})
    return Response(dashboard.render(session()), mimetype="text/html")
