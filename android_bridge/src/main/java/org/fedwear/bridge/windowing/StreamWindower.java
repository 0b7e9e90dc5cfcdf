package org.fedwear.bridge.windowing;

import java.util.ArrayList;
import java.util.List;

/**
 * Raw sensor samples to fixed-rate windows as they arrive, by the Python SDK's rules.
 *
 * <p>Samples that share a timestamp are averaged; a timestamp that goes backwards is refused; the
 * stream is split where consecutive samples are more than {@code maxGapS} apart; each segment is
 * resampled onto a regular grid by linear interpolation and cut into overlapping windows whose label
 * is the majority label of their samples (the smallest on a tie). Feeding the same samples in any
 * number of chunks gives the same windows. Not thread-safe: feed it from one thread.
 */
public final class StreamWindower {
    /** Label of a sample without one. */
    public static final int NO_LABEL = -1;

    private final WindowSpec spec;
    private Double lastT;
    // The timestamp group still open: it may continue in the next chunk.
    private boolean hasPending;
    private double pendingT;
    private double[] pendingSum;
    private long pendingCount;
    private int pendingLabel;
    // The last committed sample of the open segment.
    private boolean hasAnchor;
    private double anchorT;
    private double[] anchorV;
    private int anchorLabel;
    private double t0;
    private long nextK;
    private long rowStartK;
    private final List<double[]> rows = new ArrayList<>();
    private final List<Integer> rowLabels = new ArrayList<>();

    public StreamWindower(WindowSpec spec) {
        this.spec = spec;
    }

    public WindowSpec spec() {
        return spec;
    }

    /**
     * Takes samples (timestamps in seconds, non-decreasing; values [n][channels]; labels or null)
     * and returns the windows completed so far.
     */
    public Windows push(double[] timestamps, double[][] values, int[] labels) {
        int n = timestamps.length;
        if (values.length != n) {
            throw new IllegalArgumentException(n + " timestamps but " + values.length + " rows of values");
        }
        if (labels != null && labels.length != n) {
            throw new IllegalArgumentException(n + " timestamps but " + labels.length + " labels");
        }
        for (int i = 0; i < n; i++) {
            if (values[i].length != spec.channels) {
                throw new IllegalArgumentException("values must have " + spec.channels + " channels, row " + i
                        + " has " + values[i].length);
            }
            if (!Double.isFinite(timestamps[i])) {
                throw new IllegalArgumentException("timestamps and values must be finite numbers");
            }
            for (double x : values[i]) {
                if (!Double.isFinite(x)) {
                    throw new IllegalArgumentException("timestamps and values must be finite numbers");
                }
            }
            if (labels != null && labels[i] < NO_LABEL) {
                throw new IllegalArgumentException("labels must be class indices or " + NO_LABEL + ", got "
                        + labels[i]);
            }
        }
        if (n == 0) {
            return Windows.empty();
        }
        for (int i = 1; i < n; i++) {
            if (timestamps[i] < timestamps[i - 1]) {
                throw new IllegalArgumentException("timestamp goes backwards at sample " + i + ": " + timestamps[i]
                        + " after " + timestamps[i - 1]);
            }
        }
        if (lastT != null && timestamps[0] < lastT) {
            throw new IllegalArgumentException("timestamp goes backwards: " + timestamps[0] + " after " + lastT);
        }
        lastT = timestamps[n - 1];
        return groupAndCommit(timestamps, values, labels);
    }

    /** One sample, for sensor callbacks: the same windows as pushing the samples in one chunk. */
    public Windows push(double timestampS, float[] sample, int label) {
        double[] row = new double[sample.length];
        for (int c = 0; c < sample.length; c++) {
            row[c] = sample[c];
        }
        return push(new double[] {timestampS}, new double[][] {row}, new int[] {label});
    }

    /** Ends the stream: commits the last samples, drops an incomplete last window, resets the state. */
    public Windows flush() {
        Windows out = Windows.empty();
        if (hasPending) {
            hasPending = false;
            out = commit(new double[] {pendingT}, new double[][] {divide(pendingSum, pendingCount)},
                    new int[] {pendingLabel});
        }
        reset();
        return out;
    }

    private void reset() {
        lastT = null;
        hasPending = false;
        hasAnchor = false;
        t0 = 0;
        nextK = 0;
        rowStartK = 0;
        rows.clear();
        rowLabels.clear();
    }

    private static double[] divide(double[] sum, long count) {
        double[] out = new double[sum.length];
        for (int c = 0; c < sum.length; c++) {
            out[c] = sum[c] / count;
        }
        return out;
    }

    /** Averages samples that share a timestamp (the open group of the last chunk first) and commits all groups but the last. */
    private Windows groupAndCommit(double[] t, double[][] v, int[] labels) {
        int extra = hasPending ? 1 : 0;
        int total = t.length + extra;
        double[] gt = new double[total];
        double[][] gsum = new double[total][];
        long[] gcount = new long[total];
        int[] glabel = new int[total];
        int groups = 0;
        for (int i = -extra; i < t.length; i++) {
            double ti;
            double[] weighted;
            long weight;
            int label;
            if (i < 0) {
                ti = pendingT;
                weight = pendingCount;
                weighted = divide(pendingSum, pendingCount);
                for (int c = 0; c < weighted.length; c++) {
                    weighted[c] *= weight;
                }
                label = pendingLabel;
            } else {
                ti = t[i];
                weight = 1;
                weighted = v[i].clone();
                label = labels == null ? NO_LABEL : labels[i];
            }
            if (groups > 0 && ti == gt[groups - 1]) {
                double[] sum = gsum[groups - 1];
                for (int c = 0; c < sum.length; c++) {
                    sum[c] += weighted[c];
                }
                gcount[groups - 1] += weight;
            } else {
                gt[groups] = ti;
                gsum[groups] = weighted;
                gcount[groups] = weight;
                glabel[groups] = label;
                groups++;
            }
        }
        double[][] means = new double[groups][];
        for (int g = 0; g < groups; g++) {
            means[g] = divide(gsum[g], gcount[g]);
        }
        int last = groups - 1;
        hasPending = true;
        pendingT = gt[last];
        pendingSum = means[last].clone();
        for (int c = 0; c < pendingSum.length; c++) {
            pendingSum[c] *= gcount[last];
        }
        pendingCount = gcount[last];
        pendingLabel = glabel[last];
        double[] ct = new double[last];
        double[][] cv = new double[last][];
        int[] cl = new int[last];
        System.arraycopy(gt, 0, ct, 0, last);
        System.arraycopy(means, 0, cv, 0, last);
        System.arraycopy(glabel, 0, cl, 0, last);
        return commit(ct, cv, cl);
    }

    private Windows commit(double[] t, double[][] v, int[] lab) {
        List<Windows> parts = new ArrayList<>();
        if (hasAnchor && t.length > 0 && t[0] - anchorT > spec.maxGapS) {
            endSegment();
        }
        int start = 0;
        for (int i = 1; i <= t.length; i++) {
            boolean gap = i < t.length && t[i] - t[i - 1] > spec.maxGapS;
            if (gap || i == t.length) {
                parts.add(extendSegment(t, v, lab, start, i));
                if (gap) {
                    endSegment();
                }
                start = i;
            }
        }
        return Windows.concat(parts);
    }

    private void endSegment() {
        hasAnchor = false;
        rows.clear();
        rowLabels.clear();
    }

    /** Adds samples [from, to) of one segment, resampled onto the grid, and emits the windows they complete. */
    private Windows extendSegment(double[] ts, double[][] vs, int[] ls, int from, int to) {
        int offset = hasAnchor ? 1 : 0;
        int n = to - from + offset;
        double[] t = new double[n];
        double[][] v = new double[n][];
        int[] lab = new int[n];
        if (hasAnchor) {
            t[0] = anchorT;
            v[0] = anchorV;
            lab[0] = anchorLabel;
        } else {
            t0 = ts[from];
            nextK = 0;
            rowStartK = 0;
        }
        System.arraycopy(ts, from, t, offset, to - from);
        System.arraycopy(vs, from, v, offset, to - from);
        System.arraycopy(ls, from, lab, offset, to - from);
        hasAnchor = true;
        anchorT = t[n - 1];
        anchorV = v[n - 1].clone();
        anchorLabel = lab[n - 1];
        double step = 1.0 / spec.rateHz;
        long lastK = (long) Math.floor((t[n - 1] - t0) / step);
        while (t0 + lastK * step > t[n - 1]) {
            lastK--;
        }
        if (lastK < nextK) {
            return Windows.empty();
        }
        int left = 0;
        for (long k = nextK; k <= lastK; k++) {
            double grid = t0 + k * step;
            while (left + 1 < n && t[left + 1] <= grid) {
                left++;
            }
            int right = Math.min(left + 1, n - 1);
            double span = t[right] - t[left];
            double frac = span > 0 ? (grid - t[left]) / span : 0.0;
            double[] row = new double[spec.channels];
            for (int c = 0; c < row.length; c++) {
                row[c] = v[left][c] + (v[right][c] - v[left][c]) * frac;
            }
            rows.add(row);
            rowLabels.add(lab[left]);
        }
        nextK = lastK + 1;
        return emit();
    }

    private Windows emit() {
        int length = spec.length;
        int hop = spec.hop();
        int count = rows.size() >= length ? (rows.size() - length) / hop + 1 : 0;
        if (count <= 0) {
            return Windows.empty();
        }
        Windows out = new Windows(new float[count][length][spec.channels], new int[count], new double[count],
                new double[count]);
        for (int w = 0; w < count; w++) {
            int s = w * hop;
            for (int r = 0; r < length; r++) {
                double[] row = rows.get(s + r);
                for (int c = 0; c < spec.channels; c++) {
                    out.data[w][r][c] = (float) row[c];
                }
            }
            majority(rowLabels.subList(s, s + length), out, w);
            out.startS[w] = t0 + (rowStartK + s) / spec.rateHz;
        }
        int consumed = count * hop;
        rows.subList(0, consumed).clear();
        rowLabels.subList(0, consumed).clear();
        rowStartK += consumed;
        return out;
    }

    /** The most frequent known label (the smallest on a tie) and its share of the known labels. */
    private static void majority(List<Integer> labels, Windows out, int w) {
        int max = NO_LABEL;
        for (int label : labels) {
            max = Math.max(max, label);
        }
        if (max == NO_LABEL) {
            out.labels[w] = NO_LABEL;
            out.labelShare[w] = Double.NaN;
            return;
        }
        int[] counts = new int[max + 1];
        int known = 0;
        for (int label : labels) {
            if (label != NO_LABEL) {
                counts[label]++;
                known++;
            }
        }
        int best = 0;
        for (int label = 1; label <= max; label++) {
            if (counts[label] > counts[best]) {
                best = label;
            }
        }
        out.labels[w] = best;
        out.labelShare[w] = (double) counts[best] / known;
    }
}
