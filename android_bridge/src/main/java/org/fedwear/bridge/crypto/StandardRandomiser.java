package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.security.SecureRandom;

/** R = r^n mod n^2 with r uniform in Z_n*: textbook Paillier, one full exponentiation each. */
public final class StandardRandomiser implements Randomiser {
    private final PublicKey key;
    private final SecureRandom random;

    public StandardRandomiser(PublicKey key) {
        this(key, new SecureRandom());
    }

    public StandardRandomiser(PublicKey key, SecureRandom random) {
        this.key = key;
        this.random = random;
    }

    /** r^n mod n^2 for a given unit r. */
    public static BigInteger residue(PublicKey key, BigInteger r) {
        return r.modPow(key.n, key.nSquare);
    }

    /** A uniform unit of Z_n*. */
    static BigInteger unitBelow(BigInteger n, SecureRandom random) {
        while (true) {
            BigInteger r = new BigInteger(n.bitLength(), random);
            if (r.signum() > 0 && r.compareTo(n) < 0 && r.gcd(n).equals(BigInteger.ONE)) {
                return r;
            }
        }
    }

    @Override
    public BigInteger[] take(int count) {
        BigInteger[] out = new BigInteger[count];
        for (int i = 0; i < count; i++) {
            out[i] = residue(key, unitBelow(key.n, random));
        }
        return out;
    }
}
