"""Request bodies, validated with pydantic; errors name the field and the problem.

The same models give /openapi.json its request schemas.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.api.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CryptoConfig(Strict):
    """Codec parameters a job chooses; key_bits comes from the key service (docs/encrypted-updates.md)."""

    quant_bits: int = Field(16, ge=2, le=32, description="bits of one quantised value")
    clip: float = Field(1.0, gt=0, le=1e6, description="values are clipped to [-clip, clip] on the device")
    max_contributors: int = Field(1000, ge=2, le=1_000_000, description="contributions one sum may hold")
    max_weight: int = Field(1000, ge=1, description="largest weight of a contribution (its training windows)")
    guard_bits: int = Field(0, ge=0, le=8, description="extra high bits per slot")
    randomiser: Literal["standard", "short-exponent"] = "standard"


class Hyperparameters(Strict):
    """Local training of the shared layers (epochs, SGD with momentum) and of the personal layers."""

    epochs: int = Field(1, ge=1, le=1000)
    batch_size: int = Field(32, ge=1, le=4096)
    lr: float = Field(0.02, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    personal_epochs: int = Field(5, ge=0, le=1000)


class JobSettings(Strict):
    """How a job's rounds run."""

    rounds: int = Field(ge=1, le=100_000, description="rounds to publish before the job finishes")
    min_devices: int = Field(ge=2, le=1_000_000, description="contributions a round needs at its deadline")
    max_devices: int = Field(ge=2, le=1_000_000, description="contributions that close a round at once")
    round_timeout_s: float = Field(300, gt=0, le=7 * 86400)
    on_deadline: Literal["extend", "fail"] = "extend"
    max_extensions: int = Field(3, ge=0, le=1000)
    max_failed_rounds: int = Field(10, ge=0, le=100_000,
                                   description="the job stops after this many failed rounds in a row (0: never)")
    subsums: int = Field(4, ge=1, le=64,
                         description="at most this many sub-sums per round, each of at least min_devices "
                                     "contributions, decrypted and range-checked apart (docs/encrypted-updates.md)")
    hyperparameters: Hyperparameters = Hyperparameters()


class JobConfig(JobSettings):
    """What an operator sends to create a job."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    crypto: CryptoConfig = CryptoConfig()

    @model_validator(mode="after")
    def _devices(self) -> "JobConfig":
        if self.max_devices < self.min_devices:
            raise ValueError("max_devices must be at least min_devices")
        if self.max_devices > self.crypto.max_contributors:
            raise ValueError("max_devices must not exceed crypto.max_contributors")
        return self


class TokenRequest(Strict):
    max_uses: int | None = Field(1, ge=1, le=1_000_000, description="null: unlimited")
    expires_in_s: int = Field(86400, ge=1, le=365 * 86400)


class ReasonRequest(Strict):
    reason: str = Field("", max_length=500, pattern=NO_NUL, description="why; recorded in the job's events")


class FailRoundRequest(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL, description="why; recorded as the round's error")


class EnrolRequest(Strict):
    token: str = Field(min_length=1, max_length=200, pattern=NO_NUL, description="the enrolment token")
    name: str = Field("", max_length=200, pattern=NO_NUL, description="a label for the operator")


class MetricsReport(Strict):
    windows: int = Field(ge=0, le=10_000_000, description="labelled windows the device trained on")
    accuracy: float | None = Field(None, ge=0, le=1, description="local accuracy before training")


def describe(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors()
    )


def load_json(text: bytes | str, what: str = "request body"):
    """Parsed JSON, or ApiError 400 for invalid or too deeply nested JSON."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ApiError(400, "malformed_json", f"{what} is nested too deeply") from exc
    except ValueError as exc:
        raise ApiError(400, "malformed_json", f"{what} is not valid JSON: {exc}") from exc


def parse(model: type[Model], raw=None) -> Model:
    """Validates the request's JSON body (or `raw`) against `model`; ApiError 400 otherwise."""
    if raw is None:
        if not request.is_json:
            raise ApiError(400, "malformed_json",
                           "request body must be a JSON object (Content-Type: application/json)")
        raw = load_json(request.get_data())
    if not isinstance(raw, dict):
        raise ApiError(400, "malformed_json", "request body must be a JSON object")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise ApiError(400, "invalid_request", describe(err)) from err
