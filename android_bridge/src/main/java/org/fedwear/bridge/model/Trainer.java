package org.fedwear.bridge.model;

import java.io.Closeable;

/**
 * Runs a bundle's signatures: one SGD step on the shared or the personal layers, inference, and
 * reading and writing the flat weight vectors. On Android, {@code TfLiteTrainer} implements it over
 * TensorFlow Lite's interpreter; {@link Training} builds epochs, updates and personalisation on it.
 */
public interface Trainer extends Closeable {
    /** Which weights a step trains or a vector holds. */
    enum Part {
        SHARED, PERSONAL;

        /** The suffix of the bundle's signatures: "shared" or "personal". */
        public String signatureSuffix() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /** Which head answers a prediction. */
    enum Head {
        GLOBAL, PERSONAL
    }

    /** The bundle's manifest. */
    Manifest manifest();

    /** One SGD step with momentum on a batch (x [n][length][channels], one-hot y [n][classes]); the batch loss. */
    float trainStep(Part part, float[][][] x, float[][] yOneHot, float lr, float momentum, float coral);

    /** Class probabilities [n][classes] of a head. */
    float[][] predictProba(float[][][] x, Head head);

    /** The flat weight vector of a part. */
    float[] getWeights(Part part);

    /** Replaces a part's weights (and resets its momentum). */
    void setWeights(Part part, float[] weights);

    @Override
    void close();
}
