"""Response bodies: every JSON answer is built through one of these models.

The same models give /openapi.json its response schemas, so the document and
the answers cannot drift apart.
"""

from __future__ import annotations

from flask import Response, current_app
from pydantic import BaseModel, Field

from cloud.api.errors import ErrorBody
from cloud.api.schemas import CryptoConfig, Hyperparameters, JobSettings, PrivacyConfig, Strict


class Health(Strict):
    status: str = Field(description="ok, or degraded when the key service cannot be reached or refuses")
    database: str = Field(description="ok or unreachable")
    keyservice: str = Field(description="ok, unreachable, or how it refused (e.g. 'refused: 401')")


class Unhealthy(ErrorBody):
    status: str = Field(description="unhealthy")
    database: str = Field(description="unreachable")
    keyservice: str = Field(description="ok, unreachable, or how it refused")


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


class PlanTransitions(Strict):
    classes: int = Field(description="K, the bundle's label count: an upload carries shared_values + (K + 1) * K "
                                     "values, the last (K + 1) * K the device's transition counts (row-major) "
                                     "divided by its number of windows, zeros without recordings")
    counts: list[list[float]] | None = Field(
        description="the federation's transition counts, (K + 1) x K (row 0: first labels of recordings, "
                    "row 1 + i: labels after label i), as of model_version: the mean over the published rounds of "
                    "each round's summed counts; null before a round published them")


class Plan(Strict):
    job_id: str
    job_status: str = Field(description="running, stopping (the open round may end, no new one opens), "
                                        "stopped, aborted or finished")
    model_version: int = Field(description="latest published model version (GET /v1/weights/{version})")
    round: PlanRound | None = Field(description="the job's current round (null before the first one)")
    crypto: PlanCrypto
    hyperparameters: Hyperparameters
    bundle_sha256: str = Field(description="SHA-256 (hex) of model.tflite; also the bundle's ETag")
    shared_values: int = Field(description="number of shared weights: the V of an upload (plus (K + 1) * K when "
                                           "transitions is set)")
    min_devices: int
    max_devices: int
    selected: bool = Field(description="this device is selected for `round`: train for it and upload; only "
                                       "selected devices' uploads count")
    retry_after: int | None = Field(description="when not selected: seconds to wait before checking in again "
                                                "(null when selected, or when the job opens no more rounds)")
    privacy: PrivacyConfig | None = Field(None, description="when set, clip the update to L2 norm clip_norm, add "
                                          "N(0, (noise_multiplier * clip_norm)^2 / min_devices) to every value and "
                                          "upload with weight crypto.max_weight (docs/privacy.md)")
    transitions: PlanTransitions | None = Field(None, description="when set, uploads also carry transition counts "
                                                                  "(docs/encrypted-updates.md)")


class UploadAnswer(Strict):
    accepted: bool
    round_id: int
    contributors: int = Field(description="contributions the round held when this one was accepted, this one "
                                          "included (uploads accepted at the same moment may not count each other)")
    round_status: str = Field(description="open, or closing when this upload was seen to fill the round")


class ReportAnswer(Strict):
    stored: bool


TIME = "ISO 8601 UTC time, ending in Z"


class SubsumOutcome(Strict):
    """One sub-sum of a round after decryption (docs/encrypted-updates.md#sub-sums)."""

    part: int
    contributors: int = Field(description="contributions the database counted in it")
    total_weight: int | None = Field(description="as the key service decrypted it; null when refused")
    dropped: str | None = Field(description="why it was left out of the published mean; null when kept")


class RoundSummary(Strict):
    id: int
    number: int
    status: str = Field(description="open, closing, published or failed")
    contributors: int
    model_version: int = Field(description="the model version the round trains from")
    extensions: int = Field(description="how often its deadline was extended")
    opened_at: str = Field(description=TIME)
    deadline: str = Field(description=TIME)
    closed_at: str | None = Field(description=TIME)
    published_at: str | None = Field(description=TIME)
    seconds: float | None = Field(description="from opening to publishing (or failing)")
    bytes_in: int
    bytes_out: int
    total_weight: int | None
    reported_accuracy: float | None = Field(description="mean accuracy the round's devices reported")
    error: str | None = Field(description="why the round failed or is waiting, or which sub-sums it dropped")
    subsums: list[SubsumOutcome] | None = Field(None, description="after decryption: each sub-sum, kept or dropped")


class RoundProgress(RoundSummary):
    """The job's latest round, with what it needs."""

    min_devices: int
    max_devices: int
    max_extensions: int
    seconds_left: float | None = Field(description="until the deadline, while the round is open")


class JobBrief(Strict):
    id: str
    name: str
    status: str = Field(description="running, stopping, stopped, aborted or finished")
    model_version: int
    created_at: str = Field(description=TIME)
    status_reason: str = Field(description="why the job has its status (empty while running)")
    rounds_published: int
    rounds_failed: int
    rounds_extended: int
    devices: int = Field(description="devices enrolled")
    open_round: RoundProgress | None = Field(description="the latest round")


class JobEvent(Strict):
    at: str = Field(description=TIME)
    kind: str = Field(description="created, stopping, stopped, aborted, finished or round_failed")
    round: int | None = Field(description="the round's number, when the event concerns one")
    reason: str


class PrivacyBudget(PrivacyConfig):
    """A job's differential-privacy budget (RDP accountant, no amplification by sampling; docs/privacy.md)."""

    released_rounds: int = Field(description="rounds that released a sum: published, or failed with at least "
                                             "min_devices contributions")
    epsilon: float = Field(description="spent so far, at the job's delta")
    epsilon_planned: float = Field(description="after all the job's rounds, at the job's delta")


class JobSummary(JobBrief):
    config: JobSettings
    crypto: CryptoSettings
    shared_values: int
    upload_values: int = Field(description="values in one upload: shared_values, then (K + 1) * K transition counts "
                                           "when config.transition_counts is on (the key service's `values`)")
    privacy_budget: PrivacyBudget | None = Field(description="null when the job has no differential privacy")
    rounds: list[RoundSummary]
    events: list[JobEvent]


class JobList(Strict):
    jobs: list[JobBrief]


class RoundsPage(Strict):
    total: int
    page: int
    per_page: int
    pages: int
    rounds: list[RoundSummary] = Field(description="newest first")


class DeviceRow(Strict):
    id: str
    name: str
    token_id: str
    enrolled_at: str = Field(description=TIME)
    last_seen: str | None = Field(description="its latest upload or report; " + TIME)
    rounds_contributed: int
    revoked: bool
    device_key: str | None = Field(description="the public key it enrolled with (base64 DER "
                                               "SubjectPublicKeyInfo, EC P-256), or null")


class TokenRow(Strict):
    id: str
    max_uses: int | None = Field(description="null: unlimited")
    uses: int
    expires_at: str = Field(description=TIME)
    expired: bool
    revoked: bool


class DevicesAndTokens(Strict):
    devices: list[DeviceRow]
    tokens: list[TokenRow]


class VersionRow(Strict):
    version: int
    round: int | None = Field(description="number of the round that published it (null: the initial model)")
    created_at: str = Field(description=TIME)
    weights_sha256: str


class VersionList(Strict):
    versions: list[VersionRow] = Field(description="newest first")


class RoundFailed(Strict):
    round: RoundSummary
    job: JobBrief


class Deleted(Strict):
    id: str
    deleted: bool


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
