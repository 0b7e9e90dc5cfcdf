package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** Byte helpers shared by the codec: SHA-256, ASCII tags, fixed-width unsigned big-endian integers. */
public final class Bytes {
    private Bytes() {
    }

    /** SHA-256 of the bytes. */
    public static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this Java runtime", e);
        }
    }

    /** The ASCII bytes of a short tag such as "FWEU". */
    public static byte[] ascii(String tag) {
        return tag.getBytes(StandardCharsets.US_ASCII);
    }

    /** A non-negative integer as exactly {@code width} unsigned big-endian bytes. */
    public static byte[] unsigned(BigInteger value, int width) {
        if (value.signum() < 0 || value.bitLength() > 8 * width) {
            throw new CodecException("integer does not fit in " + width + " bytes");
        }
        byte[] raw = value.toByteArray();
        byte[] out = new byte[width];
        int copy = Math.min(raw.length, width);
        System.arraycopy(raw, raw.length - copy, out, width - copy, copy);
        return out;
    }

    /** Lower-case hex of the bytes. */
    public static String hex(byte[] data) {
        StringBuilder out = new StringBuilder(data.length * 2);
        for (byte b : data) {
            out.append(Character.forDigit((b >> 4) & 0xf, 16)).append(Character.forDigit(b & 0xf, 16));
        }
        return out.toString();
    }
}
