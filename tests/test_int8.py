"""The int8 inference model beside the training bundle, run through tflite-runtime."""

import shutil

import numpy as np
import pytest

from cloud.bundle_export import export_bundle, export_int8
from cloud.har_model import ModelConfig, build_keras_model
from device_sim import synthetic
from device_sim.partitions import within_subject
from sdk.bundle import INT8_FILE, BundleError, load_bundle
from sdk.recogniser import Recogniser
from sdk.trainer import TFLiteTrainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A bundle with an int8 model of trained weights, its float trainer, and test windows."""
    train, test = within_subject(synthetic.generate(subjects=1, executions=10, seed=4).devices[0])
    x = train.windows.reshape(-1, 6)
    mean, std = x.mean(axis=0), x.std(axis=0)
    config = ModelConfig()
    bundle = tmp_path_factory.mktemp("int8")
    manifest = export_bundle(build_keras_model(config), config.spec(), bundle, mean, std,
                             calibration=train.windows[:200])
    assert manifest.inference["int8"]["model_version"] == 1
    trainer = TFLiteTrainer(bundle)
    trainer.fit(train.windows, train.labels, epochs=8)
    trainer.fit(train.windows, train.labels, epochs=8, part="personal")
    # the operator exports the int8 model of the trained global weights
    digest = export_int8(config.spec(), trainer.get_weights(), mean, std, train.windows[:200], bundle / INT8_FILE)
    manifest_file = bundle / "manifest.json"
    manifest_file.write_text(manifest_file.read_text().replace(manifest.inference["int8"]["sha256"], digest))
    return bundle, trainer, test


def test_int8_model_is_listed_small_and_agrees_with_the_float_model(trained):
    bundle, trainer, test = trained
    manifest, _ = load_bundle(bundle)
    assert manifest.inference["int8"]["file"] == INT8_FILE
    assert (bundle / INT8_FILE).stat().st_size < (bundle / "model.tflite").stat().st_size / 3
    recogniser = Recogniser(bundle)
    float_global = trainer.predict(test.windows)
    assert np.mean(float_global == test.labels) > 0.5  # a model worth comparing
    assert np.mean(recogniser.predict(test.windows) == float_global) > 0.95
    assert np.abs(recogniser.predict_proba(test.windows) - trainer.predict_proba(test.windows)).mean() < 0.02
    personal = trainer.get_weights("personal")
    assert np.mean(recogniser.predict(test.windows, personal) == trainer.predict(test.windows, "personal")) > 0.95
    assert recogniser.predict(test.windows[:0]).shape == (0,)


def test_missing_or_tampered_int8_model_is_refused(trained, bundle_dir, tmp_path):
    with pytest.raises(BundleError, match="lists no 'int8' inference model"):
        Recogniser(bundle_dir)
    copy = tmp_path / "b"
    shutil.copytree(trained[0], copy)
    with open(copy / INT8_FILE, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match="sha256 does not match"):
        Recogniser(copy)
    with pytest.raises(ValueError, match=r"calibration needs inputs of shape \(n, 50, 6\)"):
        export_int8(ModelConfig().spec(), trained[1].get_weights(), np.zeros(6), np.ones(6), np.zeros((0, 6)), tmp_path / "x")
