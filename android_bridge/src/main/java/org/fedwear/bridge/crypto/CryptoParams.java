package org.fedwear.bridge.crypto;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * What devices, aggregator and key service agree on for one round (the plan's {@code crypto}).
 *
 * <p>Values are clipped to [-clip, clip] and quantised to {@code quantBits} bits; a contribution's
 * weight is at most {@code maxWeight}; each slot has room for the sum of {@code maxContributors}
 * contributions plus {@code guardBits} spare high bits.
 */
public final class CryptoParams {
    /** Wire-format version that the fingerprints and payloads of this class belong to. */
    public static final int FORMAT_VERSION = 2;
    public static final List<Integer> KEY_SIZES = Arrays.asList(2048, 3072);
    public static final List<String> RANDOMISERS = Arrays.asList("standard", "short-exponent");
    private static final Set<String> FIELDS = new HashSet<>(Arrays.asList(
            "key_bits", "quant_bits", "clip", "max_contributors", "max_weight", "randomiser", "guard_bits"));

    public final int keyBits;
    public final int quantBits;
    public final double clip;
    public final int maxContributors;
    public final int maxWeight;
    public final String randomiser;
    public final int guardBits;

    public CryptoParams(int keyBits, int quantBits, double clip, int maxContributors, int maxWeight,
                        String randomiser, int guardBits) {
        if (!KEY_SIZES.contains(keyBits)) {
            throw new CodecException("key_bits must be one of " + KEY_SIZES + ", got " + keyBits);
        }
        if (quantBits < 2 || quantBits > 32) {
            throw new CodecException("quant_bits must be in [2, 32], got " + quantBits);
        }
        if (!(Double.isFinite(clip) && clip > 0)) {
            throw new CodecException("clip must be a positive number, got " + clip);
        }
        if (maxContributors < 1 || maxContributors > 1_000_000) {
            throw new CodecException("max_contributors must be in [1, 1000000], got " + maxContributors);
        }
        long levels = (1L << quantBits) - 1;
        if (maxWeight < 1 || maxWeight > levels) {
            throw new CodecException("max_weight must be in [1, " + levels + "] at " + quantBits + " bits");
        }
        if (!RANDOMISERS.contains(randomiser)) {
            throw new CodecException("randomiser must be one of " + RANDOMISERS + ", got '" + randomiser + "'");
        }
        if (guardBits < 0 || guardBits > 8) {
            throw new CodecException("guard_bits must be in [0, 8], got " + guardBits);
        }
        this.keyBits = keyBits;
        this.quantBits = quantBits;
        this.clip = clip;
        this.maxContributors = maxContributors;
        this.maxWeight = maxWeight;
        this.randomiser = randomiser;
        this.guardBits = guardBits;
    }

    /** The defaults of the protocol: 2048-bit key, 16 bits, clip 1, 1000 contributors, weight up to 1000. */
    public static CryptoParams defaults() {
        return new CryptoParams(2048, 16, 1.0, 1000, 1000, "standard", 0);
    }

    /**
     * Parameters from a plan's {@code crypto} object ({@code public_key} is ignored here).
     *
     * @throws CodecException naming a missing, invalid or unknown field
     */
    public static CryptoParams fromJson(JSONObject crypto) {
        for (Iterator<String> keys = crypto.keys(); keys.hasNext(); ) {
            String key = keys.next();
            if (!FIELDS.contains(key) && !"public_key".equals(key)) {
                throw new CodecException("crypto parameter '" + key + "' is unknown to this library: upgrade it");
            }
        }
        try {
            return new CryptoParams(crypto.getInt("key_bits"), crypto.optInt("quant_bits", 16),
                    crypto.optDouble("clip", 1.0), crypto.optInt("max_contributors", 1000),
                    crypto.optInt("max_weight", 1000), crypto.optString("randomiser", "standard"),
                    crypto.optInt("guard_bits", 0));
        } catch (JSONException e) {
            throw new CodecException("invalid crypto parameters: " + e.getMessage());
        }
    }

    /** Largest quantised value: 2^quantBits - 1. */
    public long levels() {
        return (1L << quantBits) - 1;
    }

    /** Quantisation step: 2 * clip / levels. */
    public double step() {
        return 2 * clip / levels();
    }

    /** Bits per slot: room for maxContributors sums of levels, plus guardBits. */
    public int slotBits() {
        return 64 - Long.numberOfLeadingZeros(levels() * maxContributors) + guardBits;
    }

    /** Slots packed into one plaintext, below n (which has exactly keyBits bits). */
    public int slotsPerPlaintext() {
        return (keyBits - 1) / slotBits();
    }

    /** Bytes of one ciphertext on the wire. */
    public int ciphertextBytes() {
        return 2 * keyBits / 8;
    }

    /** Plaintexts needed for {@code values} values plus the weight and count slots. */
    public int plaintextsFor(int values) {
        int per = slotsPerPlaintext();
        return (values + 2 + per - 1) / per;
    }

    /** A contribution's weight: its number of samples, at least 1 and at most maxWeight. */
    public int weightOf(long samples) {
        return (int) Math.min(Math.max(1, samples), maxWeight);
    }

    /** SHA-256 over the 29-byte layout of docs/encrypted-updates.md (the randomiser is not part of it). */
    public byte[] fingerprint() {
        ByteBuffer out = ByteBuffer.allocate(29);
        out.put(Bytes.ascii("FWCP"));
        out.putShort((short) FORMAT_VERSION);
        out.putShort((short) keyBits);
        out.put((byte) quantBits);
        out.put((byte) guardBits);
        out.put((byte) slotBits());
        out.putShort((short) slotsPerPlaintext());
        out.putInt(maxContributors);
        out.putInt(maxWeight);
        out.putDouble(clip);
        return Bytes.sha256(out.array());
    }

    @Override
    public String toString() {
        return "CryptoParams(key_bits=" + keyBits + ", quant_bits=" + quantBits + ", clip=" + clip
                + ", max_contributors=" + maxContributors + ", max_weight=" + maxWeight + ", randomiser="
                + randomiser + ", guard_bits=" + guardBits + ")";
    }
}
