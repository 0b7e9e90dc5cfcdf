package org.fedwear.bridge.decoding;

/**
 * A causal transition model over a bundle's labels (docs/bundle.md, "Transition model"): start
 * probabilities and the probabilities that label j follows label i, from a table of counts.
 */
public final class TransitionModel {
    /** Probability of each label starting a recording. */
    public final double[] start;
    /** {@code transitions[i][j]}: probability that a window labelled j follows one labelled i. */
    public final double[][] transitions;

    private TransitionModel(double[] start, double[][] transitions) {
        this.start = start;
        this.transitions = transitions;
    }

    /**
     * From a (classes + 1) x classes table of counts (row 0: the first label of each recording, row
     * 1 + i: the labels that follow label i), one added to every cell and each row divided by its sum.
     */
    public static TransitionModel fromCounts(double[][] counts) {
        int classes = counts.length - 1;
        if (classes < 1) {
            throw new IllegalArgumentException("transition counts need classes + 1 rows, at least 2, got "
                    + counts.length);
        }
        double[][] rows = new double[counts.length][];
        for (int i = 0; i < counts.length; i++) {
            if (counts[i].length != classes) {
                throw new IllegalArgumentException("transition counts must be (classes + 1) x classes: row " + i
                        + " has " + counts[i].length + " values, " + classes + " expected");
            }
            rows[i] = new double[classes];
            double sum = 0;
            for (int j = 0; j < classes; j++) {
                double c = counts[i][j];
                if (!(c >= 0) || Double.isInfinite(c)) {
                    throw new IllegalArgumentException("transition counts must be finite and non-negative, row "
                            + i + " has " + c);
                }
                rows[i][j] = c + 1.0;
                sum += rows[i][j];
            }
            for (int j = 0; j < classes; j++) {
                rows[i][j] /= sum;
            }
        }
        double[][] transitions = new double[classes][];
        System.arraycopy(rows, 1, transitions, 0, classes);
        return new TransitionModel(rows[0], transitions);
    }

    /** The number of labels. */
    public int classes() {
        return start.length;
    }
}
