"""JSON errors: every 4xx/5xx answer is {"error": code, "message": text} (ErrorBody)."""

from __future__ import annotations

import hmac

from flask import Flask, g, request
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import HTTPException


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="forbid")
    error: str = Field(description="machine-readable code; docs/protocol.md lists every code")
    message: str = Field(description="what went wrong and what to do, for people")


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(app: Flask, status: int, code: str, message: str, headers: dict | None = None):
    body = ErrorBody(error=code, message=message).model_dump_json()
    return app.response_class(body, status=status, mimetype="application/json", headers=headers)


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return error_response(app, err.status, err.code, err.message, err.headers)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        code = (err.name or "error").lower().replace(" ", "_")
        message = err.description or err.name
        if err.code == 413:
            limit = g.get("body_limit") or request.max_content_length
            message = f"request body is larger than the limit of {limit} bytes"
        headers = {"Allow": ", ".join(err.valid_methods)} if getattr(err, "valid_methods", None) else None
        return error_response(app, err.code, code, message, headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(app, 500, "internal_error", "internal error; see the server log")


def bearer_token() -> str:
    """The bearer token of the request, or an ApiError 401 (400 if it holds a NUL byte)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    if "\0" in token:
        raise ApiError(400, "invalid_request", "the bearer token must not contain NUL bytes")
    return token.strip()


def require_token(expected: str) -> None:
    """ApiError 401 unless the request carries `expected` as bearer token."""
    if not hmac.compare_digest(bearer_token().encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "invalid token")


DASHBOARD_USER = "admin"


def dashboard_login(admin_token: str) -> bool:
    """Whether the request carries the dashboard's HTTP basic auth: user admin, password the admin token."""
    auth = request.authorization
    if auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(), DASHBOARD_USER.encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), admin_token.encode())
    return user_ok and password_ok
