package org.fedwear.bridge.windowing;

import java.util.ArrayList;
import java.util.List;

/**
 * Windows of shape [n][length][channels], their labels, start times (s) and label shares.
 *
 * <p>{@code labelShare} is the share of a window's labelled samples that carry its label
 * (1.0 for a window of one activity; NaN when it has no label, whose label is {@link StreamWindower#NO_LABEL}).
 */
public final class Windows {
    public final float[][][] data;
    public final int[] labels;
    public final double[] startS;
    public final double[] labelShare;

    public Windows(float[][][] data, int[] labels, double[] startS, double[] labelShare) {
        this.data = data;
        this.labels = labels;
        this.startS = startS;
        this.labelShare = labelShare;
    }

    public int size() {
        return labels.length;
    }

    static Windows empty() {
        return new Windows(new float[0][][], new int[0], new double[0], new double[0]);
    }

    /** The windows of several parts, in order. */
    public static Windows concat(List<Windows> parts) {
        int n = 0;
        for (Windows p : parts) {
            n += p.size();
        }
        Windows out = new Windows(new float[n][][], new int[n], new double[n], new double[n]);
        int at = 0;
        for (Windows p : parts) {
            System.arraycopy(p.data, 0, out.data, at, p.size());
            System.arraycopy(p.labels, 0, out.labels, at, p.size());
            System.arraycopy(p.startS, 0, out.startS, at, p.size());
            System.arraycopy(p.labelShare, 0, out.labelShare, at, p.size());
            at += p.size();
        }
        return out;
    }

    static Windows concat(Windows a, Windows b) {
        List<Windows> parts = new ArrayList<>();
        parts.add(a);
        parts.add(b);
        return concat(parts);
    }
}
