"""Response bodies: every JSON answer is built through one of these models.

The same models give /openapi.json its response schemas, so the document and
the answers cannot drift apart.
"""

from __future__ import annotations

from flask import Response, current_app
from pydantic import BaseModel, Field

from cloud.api.errors import ErrorBody
from cloud.api.schemas import CryptoConfig, Hyperparameters, JobSettings, Strict


class Health(Strict):
    status: str = Field(description="ok")


class Unhealthy(ErrorBody):
    status: str = Field(description="unhealthy")


class EnrolAnswer(Strict):
    device_id: str
    device_secret: str = Field(description="shown once; the service keeps only its hash")
    job_id: str
    authorization: str = Field(description="'Bearer <device_id>.<device_secret>': the Authorization header "
                                           "of every later device call")


class CryptoSettings(CryptoConfig):
    """A job's codec parameters (CryptoParams): the job's choice plus the key service's key size."""

    key_bits: int = Field(description="Paillier modulus size: n has exactly key_bits bits")


class PlanCrypto(CryptoSettings):
    public_key: str = Field(description='JSON text of the object {"n": "<lower-case hex of n>"}')


class PlanRound(Strict):
    id: int = Field(description="the id a device uploads to (PUT /v1/rounds/{id}/update) and puts into "
                                "its payload's header")
    number: int = Field(description="1, 2, ... within the job; for people, never for uploads")
    status: str = Field(description="open, closing, published or failed; only an open round takes uploads")
    model_version: int = Field(description="the global model version an update must be computed from")
    deadline: str = Field(description="ISO 8601 UTC time, ending in Z, after which uploads are refused")


class Plan(Strict):
    job_id: str
    job_status: str = Field(description="running or finished")
    model_version: int = Field(description="latest published model version (GET /v1/weights/{version})")
    round: PlanRound | None = Field(description="the job's current round (null before the first one)")
    crypto: PlanCrypto
    hyperparameters: Hyperparameters
    bundle_sha256: str = Field(description="SHA-256 (hex) of model.tflite; also the bundle's ETag")
    shared_values: int = Field(description="number of shared weights: the V of an upload")
    min_devices: int
    max_devices: int


class UploadAnswer(Strict):
    accepted: bool
    round_id: int
    contributors: int = Field(description="contributions the round holds, this one included")
    round_status: str = Field(description="open, or closing when this upload filled the round")


class ReportAnswer(Strict):
    stored: bool


class RoundSummary(Strict):
    id: int
    number: int
    status: str
    contributors: int
    model_version: int
    error: str | None = Field(description="why the round failed or is waiting, if it did or is")


class JobBrief(Strict):
    id: str
    name: str
    status: str
    model_version: int


class JobSummary(JobBrief):
    config: JobSettings
    crypto: CryptoSettings
    shared_values: int
    rounds: list[RoundSummary]


class JobList(Strict):
    jobs: list[JobBrief]


class TokenAnswer(Strict):
    id: str = Field(description="the token's id, for revoking it")
    token: str = Field(description="the enrolment token; shown once")
    max_uses: int | None
    expires_at: str = Field(description="ISO 8601 UTC time, ending in Z")


class Revoked(Strict):
    id: str
    revoked: bool


def reply(body: BaseModel, status: int = 200) -> Response:
    """A JSON answer from a response model."""
    return current_app.response_class(body.model_dump_json(), status=status, mimetype="application/json")
