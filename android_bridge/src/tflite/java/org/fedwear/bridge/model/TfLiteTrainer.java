package org.fedwear.bridge.model;

import java.io.File;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.tensorflow.lite.Interpreter;

/**
 * {@link Trainer} over TensorFlow Lite's Android interpreter and the bundle's signatures
 * (docs/bundle.md): infer, train_shared, train_personal, get_shared/get_personal, set_shared/set_personal.
 *
 * <p>Needs {@code org.tensorflow:tensorflow-lite} (android_bridge/README.md); this source folder is
 * not compiled with the rest of the library, which has no TensorFlow Lite dependency. TensorFlow
 * Lite's Java {@code runSignature} refuses an empty input map, so a get_* signature must declare
 * at least one input (format 2 bundles declare one scalar, {@code ignored}, fed zero here); a bundle whose
 * get_* signatures take none is refused. Trains bundles whose input is windows and whose head classifies.
 * Not thread-safe, like the interpreter.
 */
public final class TfLiteTrainer implements Trainer {
    private final Interpreter interpreter;
    private final Manifest manifest;

    /** An interpreter on one thread (training steps are small; the app's other work keeps the rest). */
    public TfLiteTrainer(File modelFile, Manifest manifest) {
        this(modelFile, manifest, new Interpreter.Options().setNumThreads(1));
    }

    public TfLiteTrainer(File modelFile, Manifest manifest, Interpreter.Options options) {
        manifest.requireWindowClassifier();
        this.manifest = manifest;
        this.interpreter = new Interpreter(modelFile, options);
        List<String> present = Arrays.asList(interpreter.getSignatureKeys());
        for (String name : manifest.signatures) {
            if (!present.contains(name)) {
                close();
                throw new BundleException(modelFile + " lacks the signature '" + name + "' its manifest lists");
            }
        }
        for (Part part : Part.values()) {
            if (interpreter.getSignatureInputs("get_" + part.signatureSuffix()).length == 0) {
                close();
                throw new BundleException("the bundle's get_" + part.signatureSuffix() + " signature takes no input; "
                        + "TensorFlow Lite's Java runSignature needs at least one: export the bundle with an input");
            }
        }
    }

    @Override
    public Manifest manifest() {
        return manifest;
    }

    @Override
    public float trainStep(Part part, float[][][] x, float[][] yOneHot, float lr, float momentum, float coral) {
        Map<String, Object> inputs = new HashMap<>();
        inputs.put("x", x);
        inputs.put("y", yOneHot);
        inputs.put("lr", lr);
        inputs.put("momentum", momentum);
        if (part == Part.PERSONAL) {
            inputs.put("coral", coral);
        }
        FloatBuffer loss = FloatBuffer.allocate(1);
        Map<String, Object> outputs = new HashMap<>();
        outputs.put("loss", loss);
        interpreter.runSignature(inputs, outputs, "train_" + part.signatureSuffix());
        return loss.get(0);
    }

    @Override
    public float[][] predictProba(float[][][] x, Head head) {
        float[][] probs = new float[x.length][manifest.numClasses()];
        if (x.length == 0) {
            return probs;
        }
        Map<String, Object> inputs = new HashMap<>();
        inputs.put("x", x);
        Map<String, Object> outputs = new HashMap<>();
        outputs.put(head == Head.GLOBAL ? "global_probs" : "personal_probs", probs);
        interpreter.runSignature(inputs, outputs, "infer");
        return probs;
    }

    @Override
    public float[] getWeights(Part part) {
        String signature = "get_" + part.signatureSuffix();
        Map<String, Object> inputs = new HashMap<>();
        for (String name : interpreter.getSignatureInputs(signature)) {
            inputs.put(name, 0f);
        }
        FloatBuffer weights = FloatBuffer.allocate(layout(part).size());
        Map<String, Object> outputs = new HashMap<>();
        outputs.put("weights", weights);
        interpreter.runSignature(inputs, outputs, signature);
        return weights.array();
    }

    @Override
    public void setWeights(Part part, float[] weights) {
        if (weights.length != layout(part).size()) {
            throw new IllegalArgumentException(part.signatureSuffix() + " weights need " + layout(part).size()
                    + " values, got " + weights.length);
        }
        for (float w : weights) {
            if (!Float.isFinite(w)) {
                throw new IllegalArgumentException(part.signatureSuffix() + " weights contain NaN or infinite values");
            }
        }
        Map<String, Object> inputs = new HashMap<>();
        inputs.put("weights", weights);
        interpreter.runSignature(inputs, new HashMap<>(), "set_" + part.signatureSuffix());
    }

    private WeightLayout layout(Part part) {
        return part == Part.SHARED ? manifest.shared : manifest.personal;
    }

    @Override
    public void close() {
        interpreter.close();
    }
}
