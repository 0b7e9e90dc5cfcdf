package org.fedwear.bridge.windowing;

import org.fedwear.bridge.model.Manifest;

/** How windows are cut: length in samples, sampling rate, overlap, largest gap, number of channels. */
public final class WindowSpec {
    public final int length;
    public final double rateHz;
    public final double overlap;
    public final double maxGapS;
    public final int channels;

    public WindowSpec(int length, double rateHz, double overlap, double maxGapS, int channels) {
        if (length < 2) {
            throw new IllegalArgumentException("window length must be at least 2 samples, got " + length);
        }
        if (!(rateHz > 0) || Double.isInfinite(rateHz)) {
            throw new IllegalArgumentException("rate_hz must be positive, got " + rateHz);
        }
        if (!(overlap >= 0 && overlap < 1)) {
            throw new IllegalArgumentException("overlap must be in [0, 1), got " + overlap);
        }
        if (!(maxGapS > 0)) {
            throw new IllegalArgumentException("max_gap_s must be positive, got " + maxGapS);
        }
        if (channels < 1) {
            throw new IllegalArgumentException("at least one channel is needed, got " + channels);
        }
        this.length = length;
        this.rateHz = rateHz;
        this.overlap = overlap;
        this.maxGapS = maxGapS;
        this.channels = channels;
    }

    /**
     * The protocol's windows for a bundle: its length, rate and channels, 50% overlap, split at gaps over
     * 0.5 s; a BundleException for a bundle that takes feature vectors.
     */
    public static WindowSpec of(Manifest manifest) {
        return new WindowSpec(manifest.windowLength(), manifest.rateHz, 0.5, 0.5, manifest.inputShape[1]);
    }

    /** Samples between the starts of consecutive windows. */
    public int hop() {
        return Math.max(1, (int) Math.rint(length * (1 - overlap)));
    }
}
