package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * Test helper: the key service's side in Java. Parses a payload by the documented layout, decrypts
 * its ciphertexts with p and q, and unpacks the slots.
 */
public final class TestDecryptor {
    /** A parsed payload: header fields and ciphertexts. */
    public static final class Parsed {
        public int version;
        public int kind;
        public byte[] paramsFingerprint;
        public byte[] keyFingerprint;
        public long roundId;
        public int keyBits;
        public int quantBits;
        public int slotBits;
        public int slotsPerPlaintext;
        public int values;
        public int contributors;
        public BigInteger[] ciphertexts;
    }

    private final PublicKey key;
    private final BigInteger lambda;
    private final BigInteger mu;

    public TestDecryptor(PublicKey key, BigInteger p, BigInteger q) {
        if (!p.multiply(q).equals(key.n)) {
            throw new IllegalArgumentException("p * q is not n");
        }
        this.key = key;
        BigInteger p1 = p.subtract(BigInteger.ONE);
        BigInteger q1 = q.subtract(BigInteger.ONE);
        lambda = p1.multiply(q1).divide(p1.gcd(q1));
        mu = lambda.modInverse(key.n);
    }

    /** The plaintext of one ciphertext: L(c^lambda mod n^2) * mu mod n. */
    public BigInteger decrypt(BigInteger c) {
        BigInteger u = c.modPow(lambda, key.nSquare);
        return u.subtract(BigInteger.ONE).divide(key.n).multiply(mu).mod(key.n);
    }

    /** Header fields and ciphertexts of a payload; an exception names the first inconsistency. */
    public static Parsed parse(byte[] payload, CryptoParams params) {
        ByteBuffer in = ByteBuffer.wrap(payload);
        byte[] magic = new byte[4];
        in.get(magic);
        if (!Arrays.equals(magic, Wire.MAGIC)) {
            throw new CodecException("bad_magic");
        }
        Parsed out = new Parsed();
        out.version = in.getShort() & 0xffff;
        out.kind = in.getShort() & 0xffff;
        out.paramsFingerprint = new byte[32];
        in.get(out.paramsFingerprint);
        out.keyFingerprint = new byte[32];
        in.get(out.keyFingerprint);
        out.roundId = in.getLong();
        out.keyBits = in.getShort() & 0xffff;
        out.quantBits = in.get() & 0xff;
        out.slotBits = in.get() & 0xff;
        out.slotsPerPlaintext = in.getShort() & 0xffff;
        out.values = in.getInt();
        int count = in.getInt();
        out.contributors = in.getInt();
        int width = params.ciphertextBytes();
        if (in.position() != Wire.HEADER_BYTES || payload.length != Wire.HEADER_BYTES + count * width) {
            throw new CodecException("payload length " + payload.length + " does not match its header");
        }
        out.ciphertexts = new BigInteger[count];
        for (int i = 0; i < count; i++) {
            byte[] c = new byte[width];
            in.get(c);
            out.ciphertexts[i] = new BigInteger(1, c);
        }
        return out;
    }

    /** The first {@code count} slots of decrypted plaintexts. */
    public static long[] unpack(BigInteger[] plaintexts, int count, CryptoParams params) {
        int per = params.slotsPerPlaintext();
        int bits = params.slotBits();
        BigInteger mask = BigInteger.ONE.shiftLeft(bits).subtract(BigInteger.ONE);
        long[] out = new long[count];
        for (int s = 0; s < count; s++) {
            out[s] = plaintexts[s / per].shiftRight((s % per) * bits).and(mask).longValueExact();
        }
        return out;
    }

    /** Decrypted slots of a payload (values, then weight, then count). */
    public long[] slots(byte[] payload, CryptoParams params) {
        Parsed parsed = parse(payload, params);
        BigInteger[] plaintexts = new BigInteger[parsed.ciphertexts.length];
        for (int i = 0; i < plaintexts.length; i++) {
            plaintexts[i] = decrypt(parsed.ciphertexts[i]);
        }
        return unpack(plaintexts, parsed.values + 2, params);
    }
}
