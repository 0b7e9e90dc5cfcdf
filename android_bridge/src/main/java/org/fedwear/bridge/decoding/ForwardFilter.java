package org.fedwear.bridge.decoding;

/**
 * Streaming activity-sequence decoding: {@link #update} takes one window's class probabilities and
 * returns the filtered ones given every window of the recording so far (an HMM forward pass; each
 * decision uses the current and earlier windows only). {@link #reset} when a recording starts.
 */
public final class ForwardFilter {
    private static final double FLOOR = 1e-6;
    private final TransitionModel model;
    private double[] belief;

    public ForwardFilter(TransitionModel model) {
        this.model = model;
    }

    /** A new recording starts. */
    public void reset() {
        belief = null;
    }

    /** {@link #update(double[])} of a trainer's float probabilities. */
    public double[] update(float[] probs) {
        double[] wide = new double[probs.length];
        for (int j = 0; j < probs.length; j++) {
            wide[j] = probs[j];
        }
        return update(wide);
    }

    /** The filtered probabilities of the next window of the recording; its argmax is the decoded label. */
    public double[] update(double[] probs) {
        int classes = model.classes();
        if (probs.length != classes) {
            throw new IllegalArgumentException("a window's probabilities need " + classes + " values, got "
                    + probs.length);
        }
        double[] next = new double[classes];
        double sum = 0;
        for (int j = 0; j < classes; j++) {
            double prior = 0;
            if (belief == null) {
                prior = model.start[j];
            } else {
                for (int i = 0; i < classes; i++) {
                    prior += belief[i] * model.transitions[i][j];
                }
            }
            next[j] = prior * Math.max(probs[j], FLOOR);
            sum += next[j];
        }
        for (int j = 0; j < classes; j++) {
            next[j] /= sum;
        }
        belief = next;
        return next.clone();
    }
}
