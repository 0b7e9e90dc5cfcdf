package org.fedwear.bridge.model;

import java.util.ArrayList;
import java.util.List;

/**
 * A small trainer in plain Java for the tests of {@link Training}: softmax regression on the
 * per-channel means of a window, with SGD and momentum. The shared head is head/*, the personal one
 * personal_head/*; the dense and adapter tensors exist in the layout but the model does not use them.
 */
final class SoftmaxTrainer implements Trainer {
    static final int CHANNELS = 2;
    static final int CLASSES = 3;
    static final String MANIFEST = "{\"format\": 2, \"model_version\": 1,"
            + " \"input\": {\"kind\": \"window\", \"shape\": [4, 2], \"rate_hz\": 8.0, \"channels\": [\"a\", \"b\"]},"
            + " \"head\": {\"kind\": \"classification\", \"name\": \"head\", \"label_names\": [\"x\", \"y\", \"z\"]},"
            + " \"layers\": {\"shared\": [{\"type\": \"global_average_pool\", \"name\": \"pool\"},"
            + " {\"type\": \"dense\", \"name\": \"dense\", \"units\": 2}], \"branch_from\": \"pool\","
            + " \"personal\": [{\"type\": \"dense\", \"name\": \"adapter\", \"units\": 2, \"copy_of\": \"dense\"},"
            + " {\"type\": \"dense\", \"name\": \"personal_head\", \"units\": 3, \"copy_of\": \"head\"}]},"
            + " \"model_sha256\": \"00\", \"signatures\": [], \"norm_mean\": [0, 0], \"norm_std\": [1, 1],"
            + " \"shared\": {\"tensors\": [{\"name\": \"dense/kernel\", \"shape\": [2, 2], \"offset\": 0},"
            + " {\"name\": \"dense/bias\", \"shape\": [2], \"offset\": 4},"
            + " {\"name\": \"head/kernel\", \"shape\": [2, 3], \"offset\": 6},"
            + " {\"name\": \"head/bias\", \"shape\": [3], \"offset\": 12}]},"
            + " \"personal\": {\"tensors\": [{\"name\": \"adapter/kernel\", \"shape\": [2, 2], \"offset\": 0},"
            + " {\"name\": \"adapter/bias\", \"shape\": [2], \"offset\": 4},"
            + " {\"name\": \"personal_head/kernel\", \"shape\": [2, 3], \"offset\": 6},"
            + " {\"name\": \"personal_head/bias\", \"shape\": [3], \"offset\": 12}]}}";

    private final Manifest manifest = Manifest.fromJson(MANIFEST);
    private final float[][] weights = {new float[15], new float[15]};
    private final float[][] velocity = {new float[15], new float[15]};
    final List<Integer> batchSizes = new ArrayList<>();

    SoftmaxTrainer() {
        for (int i = 0; i < 15; i++) {
            weights[0][i] = 0.01f * (i % 5 - 2);
        }
    }

    @Override
    public Manifest manifest() {
        return manifest;
    }

    private float[] probabilities(float[] w, float[][] window) {
        float[] f = new float[CHANNELS];
        for (float[] row : window) {
            for (int c = 0; c < CHANNELS; c++) {
                f[c] += row[c] / window.length;
            }
        }
        float[] p = new float[CLASSES];
        float max = Float.NEGATIVE_INFINITY;
        for (int k = 0; k < CLASSES; k++) {
            p[k] = w[12 + k];
            for (int c = 0; c < CHANNELS; c++) {
                p[k] += f[c] * w[6 + c * CLASSES + k];
            }
            max = Math.max(max, p[k]);
        }
        float sum = 0;
        for (int k = 0; k < CLASSES; k++) {
            p[k] = (float) Math.exp(p[k] - max);
            sum += p[k];
        }
        for (int k = 0; k < CLASSES; k++) {
            p[k] /= sum;
        }
        return p;
    }

    @Override
    public float trainStep(Part part, float[][][] x, float[][] y, float lr, float momentum, float coral) {
        batchSizes.add(x.length);
        float[] w = weights[part.ordinal()];
        float[] v = velocity[part.ordinal()];
        float[] grad = new float[15];
        float loss = 0;
        for (int i = 0; i < x.length; i++) {
            float[] p = probabilities(w, x[i]);
            for (int k = 0; k < CLASSES; k++) {
                float g = (p[k] - y[i][k]) / x.length;
                loss -= y[i][k] * Math.log(Math.max(p[k], 1e-7f)) / x.length;
                grad[12 + k] += g;
                for (int c = 0; c < CHANNELS; c++) {
                    float f = 0;
                    for (float[] row : x[i]) {
                        f += row[c] / x[i].length;
                    }
                    grad[6 + c * CLASSES + k] += g * f;
                }
            }
        }
        for (int j = 0; j < 15; j++) {
            v[j] = momentum * v[j] - lr * grad[j];
            w[j] += v[j];
        }
        return loss;
    }

    @Override
    public float[][] predictProba(float[][][] x, Head head) {
        float[][] out = new float[x.length][];
        for (int i = 0; i < x.length; i++) {
            out[i] = probabilities(weights[head == Head.GLOBAL ? 0 : 1], x[i]);
        }
        return out;
    }

    @Override
    public float[] getWeights(Part part) {
        return weights[part.ordinal()].clone();
    }

    @Override
    public void setWeights(Part part, float[] values) {
        weights[part.ordinal()] = values.clone();
        velocity[part.ordinal()] = new float[15];
    }

    @Override
    public void close() {
    }
}
