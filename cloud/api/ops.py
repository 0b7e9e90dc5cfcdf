"""Operations: health, Prometheus metrics, OpenAPI document, dashboard."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from cloud import dashboard
from cloud.api.errors import DASHBOARD_USER, dashboard_login, error_response
from cloud.api.openapi import build_document, documented
from cloud.api.responses import Health, Unhealthy, reply
from cloud.services import services, session

bp = Blueprint("ops", __name__)
log = logging.getLogger("fedwear.cloud")


@bp.get("/healthz")
@documented("Health of the database and the key service", responses={
    "200": ("healthy, or degraded: the key service cannot be reached or refuses", Health),
    "503": ("database unreachable", Unhealthy)})
def healthz():
    try:
        session().execute(text("SELECT 1"))
    except Exception:  # any database failure makes the service unhealthy; the details go to the log only
        log.exception("health check: database unreachable")
        return reply(Unhealthy(status="unhealthy", error="database_unreachable",
                               message="the database cannot be reached; see the server log",
                               database="unreachable", keyservice=services().keyservice.health()), 503)
    keyservice = services().keyservice.health()
    return reply(Health(status="ok" if keyservice == "ok" else "degraded", database="ok", keyservice=keyservice))


@bp.get("/metrics")
@documented("Prometheus metrics", produces="text/plain")
def metrics():
    return Response(generate_latest(services().metrics.registry), content_type=CONTENT_TYPE_LATEST)


@bp.get("/openapi.json")
@documented("This document")
def openapi():
    return jsonify(build_document(current_app, "FedWear aggregation service", "2"))


@bp.get("/dashboard")
@documented(f"Operator dashboard (HTTP basic auth: user {DASHBOARD_USER}, password: the admin token)",
            auth="dashboard", produces="text/html", responses={"200": "HTML page", "401": "password required"})
def dashboard_page():
    if not dashboard_login(services().settings.admin_token):
        return error_response(current_app, 401, "unauthorized", f"user {DASHBOARD_USER} and the admin token required",
                              {"WWW-Authenticate": 'Basic realm="fedwear"'})
    return Response(dashboard.render(session(), request.args), mimetype="text/html")
