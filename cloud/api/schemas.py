"""Request bodies, validated with pydantic; errors name the field and the problem.

The same models give /openapi.json its request schemas.
"""

from __future__ import annotations

import json
from typing import Literal, TypeVar

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloud.api.errors import ApiError
from sdk.attestation import load_public_key
from sdk.privacy import PrivacySettings

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


class PrivacyConfig(Strict):
    """Client-side differential privacy (docs/privacy.md): each device clips its update to L2 norm
    clip_norm and adds N(0, (noise_multiplier * clip_norm)^2 / min_devices) to every value."""

    clip_norm: float = Field(gt=0, le=1e6, description="L2 norm a device clips its shared-layer update to")
    noise_multiplier: float = Field(gt=0, le=1e4, description="std of the decrypted sum's noise, in clip_norms, "
                                                              "as long as min_devices devices are honest")
    delta: float = Field(gt=0, lt=1, description="the delta at which the job's epsilon is reported")


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
    target_devices: int | None = Field(None, ge=2, le=1_000_000,
                                       description="devices a round aims for (null: max_devices); it selects "
                                                   "ceil(target_devices * over_selection) of those that check in")
    over_selection: float = Field(1.3, ge=1, le=10,
                                  description="devices selected per targeted device: some selected devices "
                                              "never upload")
    retry_after_s: float = Field(60, gt=0, le=86400,
                                 description="pace steering: a device not selected is told to check in again "
                                             "after this many seconds, spread by +-50%")
    subsums: int = Field(4, ge=1, le=64,
                         description="at most this many sub-sums per round, each of at least min_devices "
                                     "contributions, decrypted and range-checked apart (docs/encrypted-updates.md)")
    hyperparameters: Hyperparameters = Hyperparameters()
    require_attestation: bool = Field(
        False, description="devices must send a device_key at enrolment and sign every upload "
                           "(docs/protocol.md, Device attestation)")
    privacy: PrivacyConfig | None = Field(None, description="client-side differential privacy; null: off")
    transition_counts: bool = Field(
        False, description="uploads also carry the device's activity-transition counts, summed like the update "
                           "and published in the plan for sequence decoding (a classification bundle over "
                           "windows; not with privacy; docs/encrypted-updates.md)")


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
        if self.target_devices is not None and self.target_devices < self.min_devices:
            raise ValueError("target_devices must be at least min_devices")
        return self

    @model_validator(mode="after")
    def _privacy(self) -> "JobConfig":
        if self.privacy is not None:  # a PrivacyError is a ValueError: a 400 naming the field
            PrivacySettings(**self.privacy.model_dump()).check(self.min_devices, self.crypto.quant_bits,
                                                               self.crypto.clip)
            if self.transition_counts:
                raise ValueError("transition_counts cannot be combined with privacy: client-side differential "
                                 "privacy covers the shared-layer update only; turn one of them off")
        if self.transition_counts and self.crypto.clip < 1:
            raise ValueError("transition_counts needs crypto.clip of at least 1: a device's counts go up as "
                             "fractions of its windows, up to 1, and would be clipped")
        return self


MAX_WAIT_S = 60  # a long-poll holds a server thread: bounded


class PlanQuery(BaseModel):
    """Query parameters of GET /v1/plan (others are ignored)."""

    check_in: bool = Field(True, description="false: read the plan without checking in (selects nothing)")
    after_version: int | None = Field(None, ge=0, le=2**31 - 1,
                                      description="long-poll: hold the answer while the model version is at "
                                                  "most this, nothing else changed and wait has not passed")
    wait: float = Field(0, ge=0, le=MAX_WAIT_S, description="long-poll: seconds to hold the answer at most")


class TokenRequest(Strict):
    max_uses: int | None = Field(1, ge=1, le=1_000_000,
                                 description="enrolments the token allows (default 1: single-use); "
                                             "null, sent explicitly: unlimited")
    expires_in_s: int = Field(86400, ge=1, le=365 * 86400)


class ReasonRequest(Strict):
    reason: str = Field("", max_length=500, pattern=NO_NUL, description="why; recorded in the job's events")


class FailRoundRequest(Strict):
    reason: str = Field(min_length=1, max_length=500, pattern=NO_NUL, description="why; recorded as the round's error")


class EnrolRequest(Strict):
    token: str = Field(min_length=1, max_length=200, pattern=NO_NUL, description="the enrolment token")
    name: str = Field("", max_length=200, pattern=NO_NUL, description="a label for the operator")
    device_key: str | None = Field(None, max_length=400, description="base64 DER SubjectPublicKeyInfo of the "
                                                                     "device's EC P-256 key (attestation)")

    @field_validator("device_key")
    @classmethod
    def _p256(cls, value: str | None) -> str | None:
        if value is not None:
            load_public_key(value)
        return value


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
