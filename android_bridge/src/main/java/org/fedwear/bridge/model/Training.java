package org.fedwear.bridge.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Epochs, local updates, personalisation and predictions over a {@link Trainer}, as the Python SDK does them. */
public final class Training {
    private Training() {
    }

    /**
     * SGD with momentum over shuffled mini-batches, {@code epochs} times; the mean loss per epoch.
     * Batches split the shuffled windows into ceil(n / batchSize) parts of near-equal size.
     */
    public static List<Double> fit(Trainer trainer, Trainer.Part part, float[][][] windows, int[] labels, int epochs,
                                   int batchSize, float lr, float momentum, float coral, Random random) {
        float[][] y = oneHot(labels, windows.length, trainer.manifest().numClasses());
        int n = windows.length;
        int batches = Math.max(1, (n + batchSize - 1) / batchSize);
        List<Double> history = new ArrayList<>();
        for (int epoch = 0; epoch < epochs; epoch++) {
            int[] order = permutation(n, random);
            double loss = 0;
            int steps = 0;
            int start = 0;
            for (int b = 0; b < batches; b++) {
                int size = n / batches + (b < n % batches ? 1 : 0);
                if (size == 0) {
                    continue;
                }
                float[][][] xb = new float[size][][];
                float[][] yb = new float[size][];
                for (int i = 0; i < size; i++) {
                    xb[i] = windows[order[start + i]];
                    yb[i] = y[order[start + i]];
                }
                start += size;
                loss += trainer.trainStep(part, xb, yb, lr, momentum, coral);
                steps++;
            }
            history.add(steps > 0 ? loss / steps : Double.NaN);
        }
        return history;
    }

    /** Trains the shared layers from the current global weights; returns the delta and restores them. */
    public static float[] localUpdate(Trainer trainer, float[][][] windows, int[] labels, Hyperparameters hp,
                                      Random random) {
        float[] base = trainer.getWeights(Trainer.Part.SHARED);
        fit(trainer, Trainer.Part.SHARED, windows, labels, hp.epochs, hp.batchSize, hp.lr, hp.momentum, 0f, random);
        float[] trained = trainer.getWeights(Trainer.Part.SHARED);
        trainer.setWeights(Trainer.Part.SHARED, base);
        float[] delta = new float[base.length];
        for (int i = 0; i < delta.length; i++) {
            delta[i] = trained[i] - base[i];
        }
        return delta;
    }

    /**
     * Personal layers start as copies of the shared layers they mirror (the manifest's layer spec says
     * which): the global model's function.
     */
    public static void resetPersonal(Trainer trainer) {
        Manifest manifest = trainer.manifest();
        float[] shared = trainer.getWeights(Trainer.Part.SHARED);
        float[] personal = new float[manifest.personal.size()];
        for (String[] copy : manifest.personalCopies) {
            WeightLayout.Tensor to = manifest.personal.tensor(copy[0]);
            WeightLayout.Tensor from = manifest.shared.tensor(copy[1]);
            System.arraycopy(shared, from.offset, personal, to.offset, from.size());
        }
        trainer.setWeights(Trainer.Part.PERSONAL, personal);
    }

    /** Predicted class indices of a head. */
    public static int[] predict(Trainer trainer, float[][][] windows, Trainer.Head head) {
        float[][] probs = trainer.predictProba(windows, head);
        int[] out = new int[probs.length];
        for (int i = 0; i < probs.length; i++) {
            for (int k = 1; k < probs[i].length; k++) {
                if (probs[i][k] > probs[i][out[i]]) {
                    out[i] = k;
                }
            }
        }
        return out;
    }

    /** Share of windows a head classifies right (NaN without windows). */
    public static double accuracy(Trainer trainer, float[][][] windows, int[] labels, Trainer.Head head) {
        if (labels.length == 0) {
            return Double.NaN;
        }
        int[] predicted = predict(trainer, windows, head);
        int right = 0;
        for (int i = 0; i < labels.length; i++) {
            right += predicted[i] == labels[i] ? 1 : 0;
        }
        return (double) right / labels.length;
    }

    static float[][] oneHot(int[] labels, int n, int classes) {
        if (labels.length != n) {
            throw new IllegalArgumentException(n + " windows but " + labels.length + " labels");
        }
        float[][] y = new float[n][classes];
        for (int i = 0; i < n; i++) {
            if (labels[i] < 0 || labels[i] >= classes) {
                throw new IllegalArgumentException("labels must be integers in [0, " + (classes - 1) + "], got "
                        + labels[i]);
            }
            y[i][labels[i]] = 1f;
        }
        return y;
    }

    private static int[] permutation(int n, Random random) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int swap = order[i];
            order[i] = order[j];
            order[j] = swap;
        }
        return order;
    }
}
