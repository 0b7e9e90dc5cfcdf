"""The device client against a real aggregation service."""

import os
from dataclasses import replace

import numpy as np
import pytest

from device_sim import synthetic
from sdk.client import DeviceConditions, FedWearClient, local_update
from sdk.decoding import ForwardFilter, TransitionModel, decode, transition_counts
from sdk.personalisation import choose_head
from sdk.trainer import TFLiteTrainer
from sdk.transport import HttpTransport, TransportError


@pytest.fixture(scope="module")
def data():
    device = synthetic.generate(subjects=1, executions=3, seed=5).devices[0]
    return device.windows, device.labels


@pytest.fixture
def job(cloud, bundle_dir):
    return cloud.create_job(bundle_dir, max_devices=3, min_devices=2)


class FailingUploads(HttpTransport):
    """Cannot reach the server for uploads (the device crashes before it hears back)."""

    def send(self, method, path, body, headers):
        if method == "PUT":
            raise ConnectionError("network down")
        return super().send(method, path, body, headers)


def test_enrols_once_and_keeps_credentials_private(cloud, job, tmp_path):
    token = cloud.token(job["id"], max_uses=1)
    first = FedWearClient(cloud.url, token, tmp_path / "device").enrol()
    again = FedWearClient(cloud.url, token, tmp_path / "device").enrol()  # a restart: no second enrolment
    assert first == again
    assert os.stat(tmp_path / "device" / "credentials.json").st_mode & 0o777 == 0o600


def test_resumes_after_a_crash_and_never_uploads_twice(cloud, job, tmp_path, data):
    token = cloud.token(job["id"])
    storage = tmp_path / "device"
    crashing = FedWearClient(cloud.url, token, storage, transport=FailingUploads(cloud.url, retries=1, backoff_s=0.01))
    with pytest.raises(TransportError, match="network down"):
        crashing.participate(*data)
    stored = list((storage / "rounds").glob("*.bin"))
    assert len(stored) == 1
    restarted = FedWearClient(cloud.url, token, storage)
    outcome = restarted.participate(*data)
    assert outcome.status == "uploaded" and outcome.answer["contributors"] == 1
    assert outcome.bytes_up == stored[0].stat().st_size  # the payload prepared before the crash
    assert restarted.participate(*data).status == "already_uploaded"
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 1


def test_device_conditions_and_deadline_are_respected(cloud, job, tmp_path, data):
    token = cloud.token(job["id"])
    unplugged = FedWearClient(cloud.url, token, tmp_path / "a", conditions=DeviceConditions(
        is_charging=lambda: False, require_charging=True))
    assert unplugged.participate(*data).reason == "not charging"
    low = FedWearClient(cloud.url, token, tmp_path / "b", conditions=DeviceConditions(
        battery_level=lambda: 0.1, min_battery=0.3))
    assert low.participate(*data).reason == "battery below 30%"
    late = FedWearClient(cloud.url, token, tmp_path / "c", clock=lambda: 4e9)
    assert late.participate(*data).reason == "deadline passed"
    assert cloud.job(job["id"])["rounds"][0]["contributors"] == 0


def test_personalises_locally_and_predicts(cloud, job, tmp_path, data):
    client = FedWearClient(cloud.url, cloud.token(job["id"]), tmp_path / "device")
    client.sync()
    windows, labels = data
    before = client.evaluate(windows, labels)["accuracy"]
    assert np.array_equal(client.predict(windows, "personal"), client.predict(windows, "global"))
    client.personalise(windows, labels, epochs=20)
    assert (tmp_path / "device" / "personal.npz").exists()
    assert client.evaluate(windows, labels)["accuracy"] > before
    restarted = FedWearClient(cloud.url, "unused", tmp_path / "device")
    assert np.array_equal(restarted.predict(windows), client.predict(windows))


def test_personalising_with_recordings_chooses_the_heads_blend_and_keeps_it(cloud, job, tmp_path):
    device = synthetic.generate(subjects=1, executions=4, seed=6).devices[0]
    client = FedWearClient(cloud.url, cloud.token(job["id"]), tmp_path / "device")
    client.sync()
    first = client.personalise(device.windows[:1], device.labels[:1], epochs=2, recordings=[0])
    assert first["personal_weight"] == 0.0  # one recording: it cannot tell, so the global head
    assert np.array_equal(client.predict(device.windows), client.predict(device.windows, "global"))
    chosen = client.personalise(device.windows, device.labels, epochs=20, recordings=device.execution)
    assert chosen["personal_weight"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    restarted = FedWearClient(cloud.url, "unused", tmp_path / "device")
    assert np.array_equal(restarted.predict(device.windows), client.predict(device.windows))
    assert restarted.evaluate(device.windows, device.labels)["windows"] == len(device.labels)
    client.personalise(device.windows, device.labels, epochs=1)  # without recordings: the personal head again
    assert not (tmp_path / "device" / "head.json").exists()
    dense = synthetic.generate(subjects=1, executions=4, seed=6,
                               spec=replace(synthetic.SPEC, overlap=0.8)).devices[0]  # the same recordings, denser
    denser = client.personalise(dense.windows, dense.labels, epochs=5, recordings=dense.execution,
                                check=(device.windows, device.labels, device.execution))
    assert denser["personal_weight"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    one_less = device.execution != device.executions[0]
    with pytest.raises(ValueError, match="recordings the training windows come from"):
        client.personalise(dense.windows, dense.labels, epochs=1, recordings=dense.execution,
                           check=(device.windows[one_less], device.labels[one_less], device.execution[one_less]))


def test_a_device_decodes_with_the_transition_table_it_is_given_and_keeps_it(cloud, job, tmp_path):
    device = synthetic.generate(subjects=1, executions=4, seed=7).devices[0]
    client = FedWearClient(cloud.url, cloud.token(job["id"]), tmp_path / "device")
    client.sync()
    classes = client.trainer.manifest.num_classes
    raw = client.predict_proba(device.windows, recordings=device.execution)  # no table: undecoded
    np.testing.assert_array_equal(raw, client.trainer.predict_proba(device.windows, "personal"))
    counts = transition_counts(device.labels, device.execution, classes)
    for lie, message in ((counts[1:], r"must be \(%d \+ 1\) x %d" % (classes, classes)),
                         (-counts, "non-negative"), (np.full_like(counts, np.nan), "non-negative")):
        with pytest.raises(ValueError, match=message):
            client.use_transitions(lie)
    assert client.transitions is None and not (tmp_path / "device" / "transitions.json").exists()
    client.use_transitions(counts)
    model = TransitionModel.from_counts(counts)
    decoded = client.predict_proba(device.windows, recordings=device.execution)
    np.testing.assert_allclose(decoded, decode(raw, device.execution, model))
    assert not np.allclose(decoded, raw)
    first = device.execution == device.executions[0]
    stream = ForwardFilter(client.transitions)  # one recording, window by window, as on a watch
    streamed = np.array([stream.update(client.predict_proba(w[None], decoded=False)[0])
                         for w in device.windows[first]])
    np.testing.assert_allclose(client.predict_proba(device.windows[first]), streamed, atol=1e-6)  # one recording
    np.testing.assert_array_equal(client.predict(device.windows, recordings=device.execution), decoded.argmax(1))
    with pytest.raises(ValueError, match="one sequence id per window"):
        client.predict(device.windows, recordings=device.execution[1:])

    chosen = client.personalise(device.windows, device.labels, epochs=10, recordings=device.execution)
    reference = TFLiteTrainer(tmp_path / "device" / "bundle")
    reference.set_weights(client.trainer.get_weights("shared"), "shared")
    hp = client.plan["hyperparameters"]
    weights = {decoding: choose_head(reference, device.windows, device.labels, device.execution, epochs=10,
                                     batch_size=hp["batch_size"], lr=hp["lr"], momentum=hp["momentum"],
                                     transitions=model if decoding else None).personal_weight
               for decoding in (True, False)}
    assert weights[True] != weights[False]  # on these recordings decoding changes the choice ...
    assert chosen["personal_weight"] == weights[True]  # ... and the device's choice decodes, as in use
    restarted = FedWearClient(cloud.url, "unused", tmp_path / "device")  # the table survives a restart
    np.testing.assert_allclose(restarted.predict_proba(device.windows, recordings=device.execution),
                               client.predict_proba(device.windows, recordings=device.execution))
    accuracy = restarted.evaluate(device.windows, device.labels, recordings=device.execution)["accuracy"]
    assert accuracy == np.mean(restarted.predict(device.windows, recordings=device.execution) == device.labels)
    restarted.use_transitions(None)
    assert FedWearClient(cloud.url, "unused", tmp_path / "device").transitions is None


def test_a_device_joining_later_starts_its_personal_layers_from_the_current_model(cloud, bundle_dir, tmp_path,
                                                                                     data):
    job = cloud.create_job(bundle_dir, max_devices=2, min_devices=2)
    token = cloud.token(job["id"], max_uses=None)
    for name in ("a", "b"):
        assert FedWearClient(cloud.url, token, tmp_path / name).participate(*data).status == "uploaded"
    newcomer = FedWearClient(cloud.url, token, tmp_path / "late")
    cloud.wait_for_version({"Authorization": newcomer._auth()["Authorization"]}, 2)
    assert newcomer.sync()["model_version"] == 2
    windows, _ = data
    np.testing.assert_allclose(newcomer.trainer.predict_proba(windows, "personal"),
                               newcomer.trainer.predict_proba(windows, "global"), atol=1e-6)


def test_precomputed_randomisers_take_encryption_off_the_round(cloud, bundle_dir, tmp_path, data):
    token = cloud.token(cloud.create_job(bundle_dir, max_devices=2, min_devices=2)["id"])  # closes at two uploads
    unplugged = FedWearClient(cloud.url, token, tmp_path / "a", conditions=DeviceConditions(is_charging=lambda: False))
    assert unplugged.fill_randomiser_pool().stopped_by == "not charging"
    assert not (tmp_path / "a" / "randomisers").exists()
    busy = [True]
    charging = FedWearClient(cloud.url, token, tmp_path / "b", conditions=DeviceConditions(
        is_charging=lambda: True, is_idle=lambda: not busy[0]))
    assert charging.fill_randomiser_pool().stopped_by == "not idle"
    busy[0] = False
    fill = charging.fill_randomiser_pool()  # default: two uploads' worth
    assert fill.added == fill.size > 0 and fill.size % 2 == 0 and not fill.stopped_by
    pooled = charging.participate(*data)
    assert (pooled.status, pooled.randomisers) == ("uploaded", "pool")
    assert charging._encoder(charging.plan).randomiser.stored == fill.size // 2
    computed = unplugged.participate(*data)
    assert (computed.status, computed.randomisers) == ("uploaded", "computed")
    # both devices sent the same delta: the published model moved by it, so the pooled ciphertexts decrypt right
    plan = charging.plan
    expected = local_update(TFLiteTrainer(charging.storage / "bundle"), *data, plan["hyperparameters"], seed=0)
    device = {"Authorization": charging._credentials["authorization"]}
    cloud.wait_for_version(device, plan["model_version"] + 1)
    moved = cloud.weights(device, plan["model_version"] + 1) - cloud.weights(device, plan["model_version"])
    assert np.max(np.abs(moved - expected)) < 1e-3 and np.max(np.abs(expected)) > 1e-2


def test_a_device_not_selected_downloads_nothing_and_a_waiting_one_learns_of_the_next_model(cloud, bundle_dir,
                                                                                             tmp_path, data):
    import threading

    job = cloud.create_job(bundle_dir, max_devices=2, min_devices=2, over_selection=1.0)
    token = cloud.token(job["id"], max_uses=None)
    chosen = [FedWearClient(cloud.url, token, tmp_path / name) for name in ("a", "b")]
    assert all(client.check_in()["selected"] for client in chosen)
    other = FedWearClient(cloud.url, token, tmp_path / "c")
    outcome = other.participate(*data)
    assert outcome.status == "not_selected" and outcome.retry_after >= 1, outcome
    assert outcome.bytes_downloaded == 0 and not (tmp_path / "c" / "bundle").exists()  # no bundle, no weights
    waited = {}
    waiting = threading.Thread(target=lambda: waited.update(plan=other.wait_for_version(1, timeout=120)))
    waiting.start()
    assert [client.participate(*data).status for client in chosen] == ["uploaded", "uploaded"]
    waiting.join(timeout=150)
    assert waited["plan"]["model_version"] == 2 and waited["plan"]["round"]["number"] == 2
