package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.security.SecureRandom;

/**
 * R = h_s^a mod n^2 with h_s = h^n fixed per key and a short uniform exponent a of keyBits/2 bits
 * (Damgard, Jurik and Nielsen), through a fixed-base table: one multiplication per window of a.
 *
 * <p>Its security rests on an extra assumption: that h_s^a with such a short exponent cannot be
 * told apart from a uniform n-th residue. The table holds h_s^(j * 2^(w*i)) for every window i and
 * digit j: about 16 MB at 2048 bits and 8-bit windows; 6-bit windows take 5.6 MB and a third more time.
 */
public final class ShortExponentRandomiser implements Randomiser {
    private final int windowBits;
    private final int exponentBits;
    private final SecureRandom random;
    private final ModularMultiplier multiplier;
    private final BigInteger[][] table;

    public ShortExponentRandomiser(PublicKey key) {
        this(key, 8, key.bits / 2, null, new SecureRandom());
    }

    /**
     * @param unit the base h in Z_n*, or null for a random one
     */
    public ShortExponentRandomiser(PublicKey key, int windowBits, int exponentBits, BigInteger unit,
                                   SecureRandom random) {
        if (windowBits < 1 || windowBits > 12 || exponentBits < 1) {
            throw new IllegalArgumentException("window bits must be in [1, 12] and exponent bits positive");
        }
        this.windowBits = windowBits;
        this.exponentBits = exponentBits;
        this.random = random;
        this.multiplier = new ModularMultiplier(key.nSquare);
        BigInteger h = unit != null ? unit : StandardRandomiser.unitBelow(key.n, random);
        BigInteger base = StandardRandomiser.residue(key, h);
        int windows = (exponentBits + windowBits - 1) / windowBits;
        table = new BigInteger[windows][1 << windowBits];
        for (BigInteger[] row : table) {
            row[0] = BigInteger.ONE;
            row[1] = base;
            for (int j = 2; j < row.length; j++) {
                row[j] = multiplier.multiply(row[j - 1], base);
            }
            base = multiplier.multiply(row[row.length - 1], base);
        }
    }

    /** h_s^a mod n^2 for a given exponent a in [0, 2^exponentBits). */
    public BigInteger fromExponent(BigInteger a) {
        if (a.signum() < 0 || a.bitLength() > exponentBits) {
            throw new IllegalArgumentException("exponent must be in [0, 2^" + exponentBits + ")");
        }
        int mask = (1 << windowBits) - 1;
        BigInteger r = BigInteger.ONE;
        for (int i = 0; i < table.length; i++) {
            int digit = 0;
            for (int b = windowBits - 1; b >= 0; b--) {
                digit = (digit << 1) | (a.testBit(i * windowBits + b) ? 1 : 0);
            }
            if ((digit & mask) != 0) {
                r = multiplier.multiply(r, table[i][digit]);
            }
        }
        return r;
    }

    @Override
    public BigInteger[] take(int count) {
        BigInteger[] out = new BigInteger[count];
        for (int i = 0; i < count; i++) {
            out[i] = fromExponent(new BigInteger(exponentBits, random));
        }
        return out;
    }
}
