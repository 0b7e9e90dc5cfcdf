package org.fedwear.bridge.crypto;

import java.security.SecureRandom;
import java.util.SplittableRandom;

/**
 * The slots of one contribution: quantised values, then the weight, then a count of 1.
 *
 * <p>A value x is clipped to [-clip, clip], scaled by weight / maxWeight, shifted to [0, 2 clip]
 * and stochastically rounded to an integer in [0, levels], exactly as the Python SDK does.
 */
public final class Quantised {
    /** Values, then weight, then count (1). */
    public final long[] slots;
    /** Share of the values that clipping changed. */
    public final double clippedFraction;

    private Quantised(long[] slots, double clippedFraction) {
        this.slots = slots;
        this.clippedFraction = clippedFraction;
    }

    /** A fast generator seeded from SecureRandom: what stochastic rounding needs on a device. */
    public static UniformSource randomUniforms() {
        SplittableRandom random = new SplittableRandom(new SecureRandom().nextLong());
        return random::nextDouble;
    }

    /** Clips, weights and stochastically rounds an update (one uniform draw per value, in order). */
    public static Quantised of(float[] update, int weight, CryptoParams params, UniformSource uniforms) {
        if (update.length == 0) {
            throw new CodecException("update is empty");
        }
        for (float x : update) {
            if (!Float.isFinite(x)) {
                throw new CodecException("update contains NaN or infinite values");
            }
        }
        if (weight < 1 || weight > params.maxWeight) {
            throw new CodecException("weight must be an integer in [1, " + params.maxWeight + "], got " + weight);
        }
        double clip = params.clip;
        double scale = (double) weight / params.maxWeight;
        double step = params.step();
        long levels = params.levels();
        long[] slots = new long[update.length + 2];
        int clipped = 0;
        for (int i = 0; i < update.length; i++) {
            double x = update[i];
            double c = Math.max(-clip, Math.min(clip, x));
            if (c != x) {
                clipped++;
            }
            double scaled = (c * scale + clip) / step;
            double floor = Math.floor(scaled);
            double q = floor + (uniforms.next() < scaled - floor ? 1 : 0);
            slots[i] = (long) Math.max(0, Math.min(levels, q));
        }
        slots[update.length] = weight;
        slots[update.length + 1] = 1;
        return new Quantised(slots, (double) clipped / update.length);
    }
}
