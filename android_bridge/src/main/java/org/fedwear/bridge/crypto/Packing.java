package org.fedwear.bridge.crypto;

import java.math.BigInteger;

/** Slot integers to plaintexts: slot j of plaintext i is bits [j*slotBits, (j+1)*slotBits) and holds slot i*per + j. */
public final class Packing {
    private Packing() {
    }

    /** Packs slots into plaintexts of slotsPerPlaintext slots each; unused high slots are 0. */
    public static BigInteger[] pack(long[] slots, CryptoParams params) {
        int per = params.slotsPerPlaintext();
        int bits = params.slotBits();
        long limit = 1L << bits;
        int plaintexts = (slots.length + per - 1) / per;
        int width = (per * bits + 7) / 8;
        BigInteger[] out = new BigInteger[plaintexts];
        for (int i = 0; i < plaintexts; i++) {
            byte[] bigEndian = new byte[width];
            int end = Math.min(slots.length, (i + 1) * per);
            for (int s = i * per; s < end; s++) {
                long value = slots[s];
                if (value < 0 || value >= limit) {
                    throw new CodecException("slot " + s + " holds " + value + ", beyond " + bits + " bits");
                }
                int position = (s - i * per) * bits;
                for (int done = 0; done < bits; ) {
                    int bit = position + done;
                    int shift = bit & 7;
                    int index = width - 1 - (bit >>> 3);
                    bigEndian[index] |= (byte) ((value >>> done) << shift);
                    done += 8 - shift;
                }
            }
            out[i] = new BigInteger(1, bigEndian);
        }
        return out;
    }
}
