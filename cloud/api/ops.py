"""Operations: health, Prometheus metrics, OpenAPI document, dashboard."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud import dashboard
from cloud.api.openapi import build_document, documented
from cloud.services import services, session

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
@documented("Liveness and database check", responses={"200": "healthy", "503": "database unreachable"})
def healthz():
    try:
        session().execute(text("SELECT 1"))
    except Exception as exc:  # any database failure makes the service unhealthy
        return jsonify(status="unhealthy", error="database_unreachable", message=str(exc)), 503
    return jsonify(status="ok")


@bp.get("/metrics")
@documented("Prometheus metrics", produces="text/plain")
def metrics():
    return Response(generate_latest(services().metrics.registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@documented("This document")
def openapi():
    return jsonify(build_document(current_app, "FedWear aggregation service", "1"))


@bp.get("/dashboard")
@documented("Operator dashboard (HTTP basic auth, password: the admin token)", produces="text/html",
            responses={"200": "HTML page", "401": "password required"})
def dashboard_page():
    auth = request.authorization
    token = services().settings.admin_token
    if auth is None or not hmac.compare_digest((auth.password or "").encode(), token.encode()):
        return Response("password required", 401, {"WWW-Authenticate": 'Basic realm="fedwear"'})
    return Response(dashboard.render(session()), mimetype="text/html")
