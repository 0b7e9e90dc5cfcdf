package org.fedwear.bridge.crypto;

import java.io.IOException;
import java.math.BigInteger;

/** A source of Paillier randomisers R (n-th residues modulo n^2), one per ciphertext. */
public interface Randomiser {
    /** {@code count} randomisers, each used once. */
    BigInteger[] take(int count) throws IOException;

    /** The live randomiser a plan's {@code randomiser} field names. */
    static Randomiser forMode(String mode, PublicKey key) {
        if ("standard".equals(mode)) {
            return new StandardRandomiser(key);
        }
        if ("short-exponent".equals(mode)) {
            return new ShortExponentRandomiser(key);
        }
        throw new CodecException("unknown randomiser mode '" + mode + "'");
    }
}
