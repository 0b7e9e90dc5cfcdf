"""JSON errors: every 4xx/5xx answer is {"error": code, "message": text}."""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        return jsonify(error=err.code, message=err.message), err.status

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        code = (err.name or "error").lower().replace(" ", "_")
        message = err.description or err.name
        if err.code == 413:
            message = f"request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        return jsonify(error=code, message=message), err.code

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal_error", message="internal error; see the server log"), 500


def bearer_token() -> str:
    """The bearer token of the request, or an ApiError 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    return token.strip()


def require_token(expected: str) -> None:
    """ApiError 401 unless the request carries `expected` as bearer token."""
    if not hmac.compare_digest(bearer_token().encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "invalid token")
