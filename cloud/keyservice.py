"""The key service: holds the private key, decrypts aggregates only.

Its own Flask app and process, in its own trust domain. Only the aggregator
(its bearer token) may call it. It decrypts an aggregate only if the sum holds
at least max(floor, the job's minimum) contributions, checked against the
count slot inside the ciphertexts, and logs every decryption.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

from flask import Blueprint, Flask, current_app, jsonify, request

from cloud import logs
from cloud.api.errors import ApiError, install_error_handlers, require_token
from sdk.crypto.codec import AggregateDecryptor
from sdk.crypto.errors import CodecError
from sdk.crypto.keys import PrivateKey, generate_keypair
from sdk.crypto.params import CryptoParams

log = logging.getLogger("fedwear.keyservice")
PRIVATE_KEY_FILE = "private-key.json"
bp = Blueprint("keyservice", __name__)


def load_or_create_key(data_dir: Path, bits: int) -> PrivateKey:
    """The service's private key; created (mode 0600) on first start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PRIVATE_KEY_FILE
    if path.exists():
        return PrivateKey.load(path)
    _, private = generate_keypair(bits)
    private.save(path)
    return private


@bp.before_request
def _authenticate():
    require_token(current_app.config["KS_TOKEN"])


@bp.get("/public-key")
def public_key():
    private: PrivateKey = current_app.config["KS_KEY"]
    return current_app.response_class(private.public.to_json(), mimetype="application/json")


@bp.post("/decrypt")
def decrypt():
    """Body: the aggregate payload. Query: params (JSON), min_contributors, values, job, round."""
    try:
        params = CryptoParams.from_dict(json.loads(request.args.get("params", "")))
        min_contributors = int(request.args["min_contributors"])
        values = int(request.args["values"])
    except (KeyError, ValueError, json.JSONDecodeError, CodecError) as exc:
        raise ApiError(400, "bad_request", f"params, min_contributors and values are required: {exc}") from exc
    floor = current_app.config["KS_MIN_CONTRIBUTORS"]
    decryptor = AggregateDecryptor(params, current_app.config["KS_KEY"])
    try:
        result = decryptor.decrypt(request.get_data(), max(floor, min_contributors), values)
    except CodecError as exc:
        log.warning("decrypt refused", extra={"fields": {"job": request.args.get("job"),
                                                          "round": request.args.get("round"), "reason": str(exc)}})
        raise ApiError(422, "refused", str(exc)) from exc
    record = {"event": "decrypted", "job": request.args.get("job"), "round": request.args.get("round"),
              "contributors": result.contributors, "total_weight": result.total_weight, "values": values}
    log.info("decrypted", extra={"fields": record})
    with open(current_app.config["KS_DATA_DIR"] / "decryptions.log", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    return jsonify(
        contributors=result.contributors,
        total_weight=result.total_weight,
        mean=base64.b64encode(result.mean.astype("<f4").tobytes()).decode(),
    )


def create_keyservice_app(data_dir: Path | None = None, token: str | None = None,
                          key_bits: int | None = None, min_contributors: int | None = None) -> Flask:
    """Application factory; unset arguments come from FEDWEAR_KS_* variables."""
    data_dir = Path(data_dir or os.environ.get("FEDWEAR_KS_DATA_DIR", "fedwear-keyservice")).resolve()
    token = token or os.environ.get("FEDWEAR_KEYSERVICE_TOKEN", "")
    if len(token) < 16:
        raise ValueError("FEDWEAR_KEYSERVICE_TOKEN must be set to a secret of at least 16 characters")
    logs.configure()
    app = Flask("fedwear-keyservice")
    app.config.update(
        KS_DATA_DIR=data_dir,
        KS_TOKEN=token,
        KS_KEY=load_or_create_key(data_dir, key_bits or int(os.environ.get("FEDWEAR_KS_KEY_BITS", "2048"))),
        KS_MIN_CONTRIBUTORS=max(2, min_contributors or int(os.environ.get("FEDWEAR_KS_MIN_CONTRIBUTORS", "2"))),
        MAX_CONTENT_LENGTH=int(os.environ.get("FEDWEAR_MAX_UPLOAD_BYTES", str(64 * 1024 * 1024))),
    )
    install_error_handlers(app)
    app.register_blueprint(bp)
    return app
