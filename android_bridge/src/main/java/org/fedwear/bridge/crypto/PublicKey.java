package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import org.json.JSONException;
import org.json.JSONObject;

/** A Paillier public key (g = n + 1), as the plan's {@code crypto.public_key} carries it. */
public final class PublicKey {
    public final BigInteger n;
    public final BigInteger nSquare;
    /** Bit length of n. */
    public final int bits;

    public PublicKey(BigInteger n) {
        if (n.compareTo(BigInteger.valueOf(3)) < 0 || !n.testBit(0)) {
            throw new CodecException("not a public key: n must be an odd integer");
        }
        this.n = n;
        this.nSquare = n.multiply(n);
        this.bits = n.bitLength();
    }

    /** Parses the JSON string {"n": "lower-case hex"}. */
    public static PublicKey fromJson(String text) {
        try {
            return new PublicKey(new BigInteger(new JSONObject(text).getString("n"), 16));
        } catch (JSONException | NumberFormatException e) {
            throw new CodecException("not a public key: " + e.getMessage());
        }
    }

    /** SHA-256 over "FWPK" | u16 bits | n as unsigned big-endian in bits/8 bytes. */
    public byte[] fingerprint() {
        int width = (bits + 7) / 8;
        ByteBuffer out = ByteBuffer.allocate(6 + width);
        out.put(Bytes.ascii("FWPK")).putShort((short) bits).put(Bytes.unsigned(n, width));
        return Bytes.sha256(out.array());
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof PublicKey && ((PublicKey) other).n.equals(n);
    }

    @Override
    public int hashCode() {
        return n.hashCode();
    }

    @Override
    public String toString() {
        return "PublicKey(" + bits + " bits, fingerprint " + Bytes.hex(fingerprint()).substring(0, 16) + ")";
    }
}
