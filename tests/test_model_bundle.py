import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cloud.bundle_export import export_bundle
from cloud.har_model import ModelConfig, build_keras_model
from cloud.keras_twin import keras_weights, set_keras_weights
from sdk.bundle import BundleError, load_bundle
from sdk.trainer import TFLiteTrainer


def batch(norm, n=32, seed=0):
    rng = np.random.default_rng(seed)
    mean, std = norm
    x = (rng.normal(size=(n, 50, 6)) * std + mean).astype(np.float32)
    return x, rng.integers(0, 5, n)


def keras_sgd_steps(model, layers, x, y, lr, momentum, head, steps):
    """Reference: tf.GradientTape + Keras SGD on the listed layers."""
    variables = [v for name in layers for v in model.get_layer(name).trainable_variables]
    optimizer = tf.keras.optimizers.SGD(lr, momentum=momentum)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            logits = model(x)[head]
            loss = tf.reduce_mean(
                tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            )
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return float(loss)


@pytest.fixture(scope="module", params=[(32, 64), (16, 32, 64)], ids=["2conv", "3conv"])
def variant(request, tmp_path_factory, norm):
    """(config, Keras model, bundle) for the default model and a deeper one: the steps hold for any depth."""
    config = ModelConfig(conv_filters=request.param)
    model = build_keras_model(config, seed=3)
    out = tmp_path_factory.mktemp("bundle")
    export_bundle(model, config.spec(["a", "b", "c", "d", "e"]), out, *norm)
    return config, model, out


@pytest.fixture(params=["tflite-runtime", "litert"])
def fresh(variant, request):
    """A Keras model and a TFLite trainer (on each runtime) holding the same initial weights, and their config."""
    config, model, bundle = variant
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone, TFLiteTrainer(bundle, runtime_name=request.param), config


@pytest.mark.parametrize("momentum, steps", [(0.0, 1), (0.9, 3)])
def test_train_shared_matches_gradient_tape(fresh, norm, momentum, steps):
    model, trainer, model_config = fresh
    x, y = batch(norm)
    for _ in range(steps):
        tfl_loss = trainer.train_step("shared", x, np.eye(5, dtype=np.float32)[y], 0.05, momentum)
    ref_loss = keras_sgd_steps(
        model, [*model_config.conv_layers, "dense", "head"], (x - norm[0]) / norm[1], y, 0.05, momentum, 0, steps
    )
    assert abs(tfl_loss - ref_loss) < 1e-4
    layout = model_config.shared_layout
    got, want = layout.split(trainer.get_weights("shared")), layout.split(keras_weights(model, layout))
    for name in want:
        assert np.max(np.abs(got[name] - want[name])) < 1e-4, name
    # the personal layers did not move
    assert np.array_equal(
        trainer.get_weights("personal"), keras_weights(model, model_config.personal_layout)
    )


def coral_reference(model, x, coral):
    """CORAL term of the Keras twin: covariance of the adapter's output vs the frozen dense features
    (what the personal and the global head take)."""
    probe = tf.keras.Model(model.input, [model.get_layer("head").input, model.get_layer("personal_head").input])
    feat, adapted = probe(x)
    feat = tf.stop_gradient(feat)

    def cov(a):
        centred = a - tf.reduce_mean(a, axis=0, keepdims=True)
        return tf.matmul(centred, centred, transpose_a=True) / (a.shape[0] - 1)

    d = float(adapted.shape[1])
    return coral * tf.reduce_sum(tf.square(cov(adapted) - cov(feat))) / (4 * d * d)


@pytest.mark.parametrize("coral", [0.0, 30000.0])
def test_train_personal_matches_gradient_tape_and_freezes_features(fresh, norm, coral):
    model, trainer, model_config = fresh
    x, y = batch(norm, seed=1)
    shared_before = trainer.get_weights("shared")
    # move the adapter off the identity, so that the CORAL term has a gradient
    layout = model_config.personal_layout
    moved = keras_weights(model, layout) + np.random.default_rng(7).normal(0, 0.2, layout.size).astype(np.float32)
    trainer.set_weights(moved, "personal")
    set_keras_weights(model, layout, moved)
    loss = trainer.train_step("personal", x, np.eye(5, dtype=np.float32)[y], 0.1, 0.0, coral)
    xn = (x - norm[0]) / norm[1]
    variables = [v for n in ("adapter", "personal_head") for v in model.get_layer(n).trainable_variables]
    with tf.GradientTape() as tape:
        ref = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, model(xn)[1], from_logits=True))
        term = coral_reference(model, xn, coral)
        ref = ref + term
    assert coral == 0 or float(term) > 1e-4  # the term is really there
    for v, g in zip(variables, tape.gradient(ref, variables)):
        v.assign_sub(0.1 * g)
    assert abs(loss - float(ref)) < 1e-4
    layout = model_config.personal_layout
    got, want = layout.split(trainer.get_weights("personal")), layout.split(keras_weights(model, layout))
    for name in want:
        assert np.max(np.abs(got[name] - want[name])) < 1e-4, name
    assert np.max(np.abs(want["adapter/kernel"] - layout.split(moved)["adapter/kernel"])) > 0  # it really moved
    assert np.array_equal(trainer.get_weights("shared"), shared_before)


def signature_ops(model_path) -> dict[str, list[str]]:
    """Builtin op names of each signature of a .tflite file; BATCH_MATMUL with its adjoint flags."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(model_path))
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    ops = {}
    for signature in model.signatureDefs:
        found = []
        for op in model.subgraphs[signature.subgraphIndex].operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
            if name == "BATCH_MATMUL":
                name += f"(adj_x={bool(op.builtinOptions.adjX)}, adj_y={bool(op.builtinOptions.adjY)})"
            found.append(name)
        ops[signature.signatureKey.decode()] = found
    return ops


SLOW_OPS = ("FULLY_CONNECTED", "ADD_N", "FILL", "BROADCAST_TO", "CONCATENATION", "GREATER")


def test_steps_keep_to_the_fast_op_layout(variant):
    """No op that TFLite runs on a slow path: products as plain BATCH_MATMUL, no shape computed per call."""
    ops = signature_ops(variant[2] / "model.tflite")
    for name in ("infer", "train_shared", "train_personal"):
        slow = [op for op in ops[name] if op in SLOW_OPS or "adj_y=True" in op]
        assert not slow, (name, slow)
        assert "BATCH_MATMUL(adj_x=False, adj_y=False)" in ops[name] and "GATHER" in ops[name]


def test_inference_matches_keras(fresh, norm):
    model, trainer, _ = fresh
    x, _ = batch(norm, n=300, seed=2)
    global_logits, personal_logits = model((x - norm[0]) / norm[1])
    assert np.allclose(trainer.predict_proba(x), tf.nn.softmax(global_logits), atol=1e-5)
    assert np.allclose(trainer.predict_proba(x, "personal"), tf.nn.softmax(personal_logits), atol=1e-5)


def test_weights_round_trip_and_reject_bad_vectors(fresh, tmp_path):
    _, trainer, model_config = fresh
    size = model_config.shared_layout.size
    new = np.random.default_rng(0).normal(size=size).astype(np.float32)
    trainer.set_weights(new)
    assert np.array_equal(trainer.get_weights(), new)
    with pytest.raises(ValueError, match=f"need {size} values"):
        trainer.set_weights(new[:-1])
    with pytest.raises(ValueError, match="NaN"):
        trainer.set_weights(np.full(size, np.nan))
    personal = trainer.get_weights("personal") + 1
    trainer.set_weights(personal, "personal")
    trainer.save_personal(tmp_path / "personal.npz")
    other = TFLiteTrainer(trainer.bundle_dir)
    other.load_personal(tmp_path / "personal.npz")
    assert np.array_equal(other.get_weights("personal"), personal)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a personal-weights file"):
        other.load_personal(tmp_path / "junk.npz")


def test_bad_windows_and_labels_are_refused(bundle_dir, norm):
    trainer = TFLiteTrainer(bundle_dir)
    x, y = batch(norm, n=4)
    with pytest.raises(ValueError, match=r"shape \(n, 50, 6\)"):
        trainer.predict(x[:, :40])
    with pytest.raises(ValueError, match="labels must be integers"):
        trainer.fit(x, y + 5)
    with pytest.raises(ValueError, match="4 windows but 3 labels"):
        trainer.fit(x, y[:3])


def test_manifest_describes_the_model(bundle_dir, model_config):
    manifest, model_path = load_bundle(bundle_dir)
    assert manifest.window_length == 50 and manifest.num_classes == 5
    assert manifest.shared.size == model_config.shared_layout.size
    assert [t.name for t in manifest.personal.tensors][0] == "adapter/kernel"
    assert set(manifest.signatures) >= {"infer", "train_shared", "train_personal"}


def test_docs_name_every_manifest_field():
    import dataclasses
    import re

    from sdk.bundle import Manifest
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "bundle.md").read_text()
    table = text.split("## Manifest")[1].split("## ")[0]
    documented = {name for row in table.splitlines() if row.startswith("| `") for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert documented == {f.name for f in dataclasses.fields(Manifest)}


def test_tampered_or_incomplete_bundle_is_refused(bundle_dir, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    with open(copy / "model.tflite", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(BundleError, match="does not match the manifest"):
        TFLiteTrainer(copy)
    shutil.copytree(bundle_dir, tmp_path / "c")
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    manifest["format"] = 99
    (tmp_path / "c" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format 99 is not supported"):
        TFLiteTrainer(tmp_path / "c")
    (tmp_path / "d").mkdir()
    with pytest.raises(BundleError, match="missing"):
        TFLiteTrainer(tmp_path / "d")
