"""Model specs to trainable bundles: every layer type and two whole stacks, trained in tflite-runtime
and checked against tf.GradientTape with Keras SGD; the export-time check; specs that cannot be built."""

import json

import numpy as np
import pytest
import tensorflow as tf

from cloud import builtin_layers
from cloud.bundle_export import export_bundle
from cloud.gradient_check import GradientMismatch
from cloud.keras_twin import build_keras_model, keras_weights, set_keras_weights
from sdk.bundle import BundleError, Manifest, load_bundle
from sdk.model_spec import ModelSpec, SpecError
from sdk.personalisation import reset_personal
from sdk.recogniser import Recogniser
from sdk.trainer import TFLiteTrainer


def spec(input_, layers, head=None, branch_from="input", names=None):
    return ModelSpec.from_dict({"input": input_, "layers": layers,
                                "head": head or {"kind": "classification", "label_names": ["a", "b", "c"]},
                                "personal": {"branch_from": branch_from, **({"names": names} if names else {})}})


FEATURES = {"kind": "features", "shape": [7]}
WINDOW = {"kind": "window", "shape": [12, 3], "rate_hz": 25.0, "channels": ["x", "y", "z"]}
REGRESSION = {"kind": "regression", "target": "score", "units": "points"}

# One small stack per layer type (and per head): each puts that layer between trained layers.
LAYER_SPECS = {
    "dense": spec(FEATURES, [{"type": "dense", "units": 5}]),
    "relu": spec(FEATURES, [{"type": "dense", "units": 6}, {"type": "relu"}, {"type": "dense", "units": 4}],
                 branch_from="dense1_relu"),
    "conv1d": spec(WINDOW, [{"type": "conv1d", "filters": 4, "kernel_size": 3},
                            {"type": "conv1d", "filters": 5, "kernel_size": 4}, {"type": "flatten"}],
                   branch_from="flatten"),
    "global_average_pool": spec(WINDOW, [{"type": "conv1d", "filters": 6, "kernel_size": 5},
                                         {"type": "global_average_pool"}, {"type": "dense", "units": 4}],
                                branch_from="pool"),
    "flatten": spec(WINDOW, [{"type": "flatten"}, {"type": "dense", "units": 6}, {"type": "relu"}],
                    branch_from="flatten"),
    "softmax_head": spec(FEATURES, [{"type": "dense", "units": 4}, {"type": "relu"}], branch_from="dense1_relu"),
    "regression_head": spec(FEATURES, [{"type": "dense", "units": 6}, {"type": "relu"}, {"type": "dense", "units": 3}],
                            head=REGRESSION, branch_from="dense1_relu"),
}

# Two whole models: a tabular MLP and a time-series CNN.
STACKS = {
    "tabular_mlp": spec({"kind": "features", "shape": [30]},
                        [{"type": "dense", "name": "hidden", "units": 32}, {"type": "relu"},
                         {"type": "dense", "name": "features", "units": 16}, {"type": "relu"}],
                        head={"kind": "classification", "label_names": ["benign", "malignant"]},
                        branch_from="hidden_relu"),
    "time_series_cnn": spec({"kind": "window", "shape": [32, 3], "rate_hz": 50.0, "channels": ["x", "y", "z"]},
                            [{"type": "conv1d", "filters": 8, "kernel_size": 5}, {"type": "relu"},
                             {"type": "conv1d", "filters": 16, "kernel_size": 3}, {"type": "relu"},
                             {"type": "global_average_pool"}, {"type": "dense", "units": 16}, {"type": "relu"}],
                            head={"kind": "classification", "label_names": ["a", "b", "c", "d"]},
                            branch_from="pool", names={"dense1": "adapter"}),
}


def norm_of(model_spec):
    width = model_spec.input.width
    return np.linspace(-1, 2, width).astype(np.float32), np.linspace(0.5, 3, width).astype(np.float32)


def batch(model_spec, n=24, seed=0):
    rng = np.random.default_rng(seed)
    mean, std = norm_of(model_spec)
    x = (rng.normal(size=(n, *model_spec.input.shape)) * std + mean).astype(np.float32)
    if model_spec.head.kind == "classification":
        return x, rng.integers(0, model_spec.head.outputs, n)
    return x, rng.normal(size=n).astype(np.float32)


def exported(model_spec, out, seed=1, calibration=None):
    model = build_keras_model(model_spec, seed=seed)
    export_bundle(model, model_spec, out, *norm_of(model_spec), calibration=calibration)
    return model, TFLiteTrainer(out)


def reference_loss(model_spec, output, y):
    if model_spec.head.kind == "classification":
        return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y, output, from_logits=True))
    return tf.reduce_mean(tf.square(output[:, 0] - y))


def keras_steps(model, model_spec, part, x, y, lr, momentum, steps, coral=0.0):
    """Reference: tf.GradientTape and Keras SGD on one part's layers; the last loss."""
    layers = model_spec.shared_layers if part == "shared" else model_spec.personal_layers
    variables = [v for layer in layers if layer.weighted for v in model.get_layer(layer.name).trainable_variables]
    optimizer = tf.keras.optimizers.SGD(lr, momentum=momentum)
    mean, std = norm_of(model_spec)
    xn = (x - mean) / std
    head = model_spec.shared_layers[-1].name if part == "shared" else model_spec.personal_layers[-1].name
    probe = tf.keras.Model(model.input, [model.get_layer(model_spec.head.name).input, model.get_layer(head).input,
                                         model.outputs[0 if part == "shared" else 1]])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            feat, adapted, output = probe(xn)
            loss = reference_loss(model_spec, output, y)
            if coral:
                def cov(a):
                    c = a - tf.reduce_mean(a, axis=0, keepdims=True)
                    return tf.matmul(c, c, transpose_a=True) / (a.shape[0] - 1)

                d = float(adapted.shape[1])
                loss += coral * tf.reduce_sum(tf.square(cov(adapted) - cov(tf.stop_gradient(feat)))) / (4 * d * d)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return float(loss)


def assert_same_weights(trainer, model, model_spec, part):
    layout = model_spec.shared_layout if part == "shared" else model_spec.personal_layout
    got, want = layout.split(trainer.get_weights(part)), layout.split(keras_weights(model, layout))
    for name in want:
        assert np.max(np.abs(got[name] - want[name])) < 1e-4, name


def check_training(model_spec, tmp_path, steps=2, coral=0.0):
    """Shared steps with momentum, then personal steps (layers moved off their copies), against Keras."""
    model, trainer = exported(model_spec, tmp_path)
    x, y = batch(model_spec)
    targets = trainer._targets(y, len(x))
    for _ in range(steps):
        loss = trainer.train_step("shared", x, targets, 0.05, 0.9)
    assert abs(loss - keras_steps(model, model_spec, "shared", x, y, 0.05, 0.9, steps)) < 1e-4
    assert_same_weights(trainer, model, model_spec, "shared")
    layout = model_spec.personal_layout
    moved = keras_weights(model, layout) + np.random.default_rng(2).normal(0, 0.2, layout.size).astype(np.float32)
    trainer.set_weights(moved, "personal")
    set_keras_weights(model, layout, moved)
    shared = trainer.get_weights("shared")
    for _ in range(steps):
        loss = trainer.train_step("personal", x, targets, 0.05, 0.9, coral)
    assert abs(loss - keras_steps(model, model_spec, "personal", x, y, 0.05, 0.9, steps, coral)) < 1e-4
    assert_same_weights(trainer, model, model_spec, "personal")
    assert np.array_equal(trainer.get_weights("shared"), shared)  # the shared layers stay frozen
    assert np.max(np.abs(trainer.get_weights("personal") - moved)) > 1e-3  # personal training moved something
    return model, trainer


@pytest.mark.parametrize("kind", list(LAYER_SPECS))
def test_each_layer_type_trains_as_gradient_tape_says(kind, tmp_path):
    model_spec = LAYER_SPECS[kind]
    model, trainer = check_training(model_spec, tmp_path)
    x, _ = batch(model_spec, seed=5)
    mean, std = norm_of(model_spec)
    global_out, personal_out = model((x - mean) / std)
    if model_spec.head.kind == "classification":
        global_out, personal_out = tf.nn.softmax(global_out), tf.nn.softmax(personal_out)
    assert np.allclose(trainer.predict_proba(x), global_out, atol=1e-5)
    assert np.allclose(trainer.predict_proba(x, "personal"), personal_out, atol=1e-5)


@pytest.mark.parametrize("name", list(STACKS))
def test_whole_stacks_train_as_gradient_tape_says(name, tmp_path):
    check_training(STACKS[name], tmp_path, steps=3, coral=300.0)


def test_personal_layers_start_as_copies_named_by_the_spec(tmp_path):
    model_spec = STACKS["tabular_mlp"]
    _, trainer = exported(model_spec, tmp_path)
    manifest = trainer.manifest
    assert [layer["copy_of"] for layer in manifest.layers["personal"]] == ["features", "features_relu", "head"]
    assert [t.name for t in manifest.personal.tensors] == [
        "personal_features/kernel", "personal_features/bias", "personal_head/kernel", "personal_head/bias"]
    trainer.set_weights(np.zeros(manifest.personal.size), "personal")
    reset_personal(trainer)
    x, _ = batch(model_spec)
    assert np.array_equal(trainer.predict_proba(x, "personal"), trainer.predict_proba(x))


def test_tabular_bundle_takes_feature_vectors_and_its_int8_model_runs_the_personal_layers(tmp_path):
    model_spec = STACKS["tabular_mlp"]
    x, y = batch(model_spec, n=200)
    _, trainer = exported(model_spec, tmp_path, calibration=x[:100])
    trainer.fit(x, y, epochs=5)
    trainer.fit(x, y, epochs=5, part="personal")
    with pytest.raises(ValueError, match=r"feature vectors must have shape \(n, 30\), got \(4, 29\)"):
        trainer.predict(x[:4, :29])
    with pytest.raises(ValueError, match="4 feature vectors but 3 labels"):
        trainer.fit(x[:4], y[:3])
    assert trainer.evaluate(x, y)["windows"] == 200
    recogniser = Recogniser(tmp_path)  # the int8 model of the initial weights
    initial = TFLiteTrainer(tmp_path)
    initial.set_weights(trainer.get_weights("personal"), "personal")
    personal = trainer.get_weights("personal")
    agree = np.mean(recogniser.predict(x, personal) == initial.predict(x, "personal"))
    assert agree > 0.9


def test_regression_bundle_predicts_values_and_refuses_non_numbers(tmp_path):
    model_spec = LAYER_SPECS["regression_head"]
    _, trainer = exported(model_spec, tmp_path)
    x, y = batch(model_spec, n=64)
    before = trainer.evaluate(x, y)["mse"]
    trainer.fit(x, y, epochs=30, lr=0.01)
    assert trainer.evaluate(x, y)["mse"] < before
    assert trainer.predict(x).shape == (64,)
    with pytest.raises(ValueError, match=r"targets \(score\) must be finite"):
        trainer.fit(x[:2], np.array([1.0, np.nan]))
    assert trainer.manifest.head.units == "points" and trainer.manifest.label_names == ()


def test_export_refuses_a_wrong_gradient_and_names_the_layer(tmp_path, monkeypatch):
    right = builtin_layers.conv1d_kernel_grads

    def off_by_one_percent(framed, d_z, kernel):
        d_kernel, d_bias = right(framed, d_z, kernel)
        return d_kernel * 1.01, d_bias

    monkeypatch.setattr(builtin_layers, "conv1d_kernel_grads", off_by_one_percent)
    model_spec = STACKS["time_series_cnn"]
    with pytest.raises(GradientMismatch, match=r"train_shared: the gradient of layer 'conv\d' \(conv\d/kernel\)"):
        export_bundle(build_keras_model(model_spec), model_spec, tmp_path / "b", *norm_of(model_spec))
    assert not (tmp_path / "b").exists()


def test_export_checks_the_coral_gradient(tmp_path, monkeypatch):
    from cloud.trainable_module import TrainableModule

    right = TrainableModule._coral

    def no_coral_gradient(adapted, feat):
        loss, gradient = right(adapted, feat)
        return loss, 0.5 * gradient

    monkeypatch.setattr(TrainableModule, "_coral", staticmethod(no_coral_gradient))
    model_spec = STACKS["time_series_cnn"]
    with pytest.raises(GradientMismatch, match=r"train_personal \(coral .*\): the gradient of layer 'adapter'"):
        export_bundle(build_keras_model(model_spec), model_spec, tmp_path / "b", *norm_of(model_spec))


@pytest.mark.parametrize("change, message", [
    (lambda s: s["layers"].insert(0, {"type": "conv1d", "filters": 2, "kernel_size": 3}), "takes a time series"),
    (lambda s: s["layers"].append({"type": "maxpool"}), "type 'maxpool' is not supported"),
    (lambda s: s["personal"].update(branch_from="nowhere"), "branch_from 'nowhere' is not a hidden shared layer"),
    (lambda s: s["layers"][0].update(name="head"), "layer names must be unique"),
    (lambda s: s["head"].update(kind="regression", target="y"), "names its target"),
    (lambda s: s["input"].update(shape=[30, 2]), "has shape \\[count\\]"),
    (lambda s: s["layers"][0].update(units=0), "needs a positive units"),
    (lambda s: s.update(extra=1), "unknown model spec fields"),
    (lambda s: s.pop("personal"), "personal.branch_from is missing"),
])
def test_specs_that_cannot_be_built_are_refused_with_the_reason(change, message):
    raw = STACKS["tabular_mlp"].to_json_spec()
    change(raw)
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict(raw)


def test_a_time_series_branch_must_be_a_feature_vector():
    raw = STACKS["time_series_cnn"].to_json_spec()
    raw["personal"] = {"branch_from": "conv1_relu"}
    with pytest.raises(SpecError, match="branch from a feature vector"):
        ModelSpec.from_dict(raw)
    raw["personal"] = {"branch_from": "pool"}
    raw["layers"] = raw["layers"][:4]  # no pooling: the head would take a time series
    with pytest.raises(SpecError, match=r"layer 'head' \(dense\) takes a feature vector, got shape \[26, 16\]; put global_average_pool"):
        ModelSpec.from_dict(raw)


def test_manifest_round_trips_and_refuses_format_1_and_lies(tmp_path):
    model_spec = STACKS["time_series_cnn"]
    exported(model_spec, tmp_path)
    manifest, _ = load_bundle(tmp_path)
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert manifest.spec == model_spec and manifest.window_length == 32
    raw = json.loads(manifest.to_json())
    for change, message in [
        (lambda r: r.update(format=1), "format 1 is not supported any more: export the model again"),
        (lambda r: r["layers"]["personal"][0].update(units=8), "personal layers are not copies"),
        (lambda r: r["shared"]["tensors"].pop(), "shared weight layout does not match the layer spec"),
        (lambda r: r.update(norm_mean=[0.0]), "norm_mean and norm_std need 3 values"),
        (lambda r: r.update(inference={"int8": {"file": "../model.tflite", "sha256": "0"}}), "plain file name"),
    ]:
        lie = json.loads(json.dumps(raw))
        change(lie)
        with pytest.raises(BundleError, match=message):
            Manifest.from_json(json.dumps(lie))


@pytest.mark.parametrize("name", ["tabular_mlp", "time_series_cnn", "regression_head", "flatten"])
def test_any_stack_keeps_to_the_fast_op_layout(name, tmp_path):
    from tests.test_model_bundle import SLOW_OPS, signature_ops

    exported({**STACKS, **LAYER_SPECS}[name], tmp_path)
    ops = signature_ops(tmp_path / "model.tflite")
    for signature in ("infer", "train_shared", "train_personal"):
        assert not [op for op in ops[signature] if op in SLOW_OPS or "adj_y=True" in op], signature
        assert "BATCH_MATMUL(adj_x=False, adj_y=False)" in ops[signature]
    from tflite_runtime.interpreter import Interpreter

    signatures = Interpreter(model_path=str(tmp_path / "model.tflite")).get_signature_list()
    assert signatures["get_shared"]["inputs"] == signatures["get_personal"]["inputs"] == ["ignored"]  # for Java
