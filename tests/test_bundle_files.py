"""A tabular bundle with its int8 inference model through the real service: every file the manifest lists is
uploaded, served and downloaded; bundles that lie about their files are refused."""

import json
import shutil

import numpy as np
import pytest
import requests

from cloud.bundle_export import export_bundle
from cloud.keras_twin import build_keras_model
from sdk.bundle import INT8_FILE, BundleError, job_form_files
from sdk.client import FedWearClient
from sdk.model_spec import ModelSpec
from sdk.recogniser import Recogniser

SPEC = ModelSpec.from_dict({
    "input": {"kind": "features", "shape": [6], "names": ["a", "b", "c", "d", "e", "f"]},
    "layers": [{"type": "dense", "units": 8}, {"type": "relu"}],
    "head": {"kind": "classification", "label_names": ["no", "yes"]},
    "personal": {"branch_from": "dense1_relu"}})


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32) * 2 + 1
    return x, (x[:, 0] + x[:, 1] > 2).astype(np.int64)


@pytest.fixture(scope="module")
def tabular_bundle(tmp_path_factory, features):
    x, _ = features
    out = tmp_path_factory.mktemp("tabular")
    export_bundle(build_keras_model(SPEC), SPEC, out, x.mean(axis=0), x.std(axis=0), calibration=x[:60])
    return out


def test_every_listed_file_is_served_and_the_client_trains_on_feature_vectors(cloud, tabular_bundle, features,
                                                                              tmp_path):
    job = cloud.create_job(tabular_bundle, min_devices=2, max_devices=2)
    device = cloud.enrol(cloud.token(job["id"]))
    int8 = requests.get(f"{cloud.url}/v1/bundle/{INT8_FILE}", headers=device)
    assert int8.status_code == 200 and int8.content == (tabular_bundle / INT8_FILE).read_bytes()
    etag = int8.headers["ETag"]
    manifest = json.loads((tabular_bundle / "manifest.json").read_text())
    assert etag.strip('"') == manifest["inference"]["int8"]["sha256"]
    assert requests.get(f"{cloud.url}/v1/bundle/{INT8_FILE}", headers={**device, "If-None-Match": etag}).status_code == 304
    missing = requests.get(f"{cloud.url}/v1/bundle/other.tflite", headers=device)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert INT8_FILE in missing.json()["message"]
    assert requests.get(f"{cloud.url}/v1/bundle/{INT8_FILE}").status_code == 401

    x, y = features
    clients = [FedWearClient(cloud.url, cloud.token(job["id"]), tmp_path / f"d{i}") for i in range(2)]
    outcomes = [c.participate(x[i::2], y[i::2], seed=i) for i, c in enumerate(clients)]
    assert [o.status for o in outcomes] == ["uploaded", "uploaded"]
    assert (tmp_path / "d0" / "bundle" / INT8_FILE).read_bytes() == (tabular_bundle / INT8_FILE).read_bytes()
    clients[0].personalise(x[::2], y[::2], epochs=3)
    recogniser = Recogniser(tmp_path / "d0" / "bundle")
    assert recogniser.predict(x[:5], clients[0].trainer.get_weights("personal")).shape == (5,)
    with pytest.raises(ValueError, match=r"feature vectors must have shape \(n, 6\), got \(3, 5\)"):
        clients[1].personalise(x[:3, :5], y[:3])


def test_job_creation_refuses_missing_tampered_or_format_1_files(cloud, tabular_bundle, tmp_path):
    def create(files):
        return requests.post(f"{cloud.url}/admin/jobs", headers=cloud.admin, files=files,
                             data={"config": json.dumps({"name": "x", "rounds": 1, "min_devices": 2,
                                                         "max_devices": 2, "round_timeout_s": 60})})

    files = job_form_files(tabular_bundle)
    answer = create({k: v for k, v in files.items() if k != INT8_FILE})
    assert answer.status_code == 400 and answer.json()["error"] == "missing_file" and INT8_FILE in answer.text
    answer = create({**files, INT8_FILE: files[INT8_FILE] + b"x"})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_bundle" and "sha256" in answer.text
    old = json.loads(files["manifest"])
    old["format"] = 1
    answer = create({**files, "manifest": json.dumps(old).encode()})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_bundle"
    assert "format 1 is not supported any more" in answer.text
    renamed = json.loads(files["manifest"])
    renamed["inference"]["int8"]["file"] = "../../etc/passwd"
    answer = create({**files, "manifest": json.dumps(renamed).encode()})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_bundle" and "plain file name" in answer.text
    copy = tmp_path / "copy"
    shutil.copytree(tabular_bundle, copy)
    (copy / INT8_FILE).unlink()
    with pytest.raises(BundleError, match=f"{INT8_FILE} missing; the manifest lists them"):
        job_form_files(copy)
