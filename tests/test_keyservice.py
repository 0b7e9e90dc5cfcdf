"""The key service over HTTP: only the aggregator, only sums of enough contributions, every decryption logged."""

import json
from pathlib import Path

import numpy as np
import requests

from sdk.crypto.codec import EncryptedSum, UpdateEncoder
from sdk.crypto.keys import PublicKey
from sdk.crypto.params import CryptoParams


def keyservice_call(cloud, aggregate: bytes, params: CryptoParams, minimum: int, token: str | None = None):
    base = cloud.keyservice.health.rsplit("/", 1)[0]
    token = token or cloud.keyservice.env["FEDWEAR_KEYSERVICE_TOKEN"]
    return requests.post(f"{base}/decrypt", data=aggregate, headers={"Authorization": f"Bearer {token}"},
                         params={"params": json.dumps(params.to_dict()), "min_contributors": minimum,
                                 "values": 30, "job": "j", "round": "1"})


def aggregate_of(cloud, params: CryptoParams, count: int) -> bytes:
    base = cloud.keyservice.health.rsplit("/", 1)[0]
    public = PublicKey.from_json(requests.get(f"{base}/public-key", headers=cloud.keyservice.headers).text)
    encoder = UpdateEncoder(params, public)
    total = EncryptedSum(params, public, 30, round_id=1)
    for i in range(count):
        total.add(encoder.encode(np.full(30, 0.1 * (i + 1)), 10, round_id=1).payload)
    return total.to_bytes()


def test_keyservice_decrypts_only_enough_contributions_for_the_aggregator(cloud):
    params = CryptoParams(max_contributors=10, max_weight=100)
    one, three = aggregate_of(cloud, params, 1), aggregate_of(cloud, params, 3)
    refused = keyservice_call(cloud, one, params, 1)
    assert refused.status_code == 422 and "at least 2" in refused.json()["message"]
    refused = keyservice_call(cloud, three, params, 4)
    assert refused.status_code == 422 and "at least 4" in refused.json()["message"]
    assert keyservice_call(cloud, three, params, 3, token="not-the-aggregator").status_code == 401
    answer = keyservice_call(cloud, three, params, 3)
    assert answer.status_code == 200 and answer.json()["contributors"] == 3
    log = Path(cloud.keyservice.env["FEDWEAR_KS_DATA_DIR"]) / "decryptions.log"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["contributors"] for e in entries] == [3]
    bad = keyservice_call(cloud, b"junk", params, 3)
    assert bad.status_code == 422 and "truncated" in bad.json()["message"]
