package org.fedwear.bridge.crypto;

import java.math.BigInteger;
import java.nio.ByteBuffer;

/** Wire format version 2 of encrypted contributions and aggregates (docs/encrypted-updates.md). */
public final class Wire {
    public static final byte[] MAGIC = Bytes.ascii("FWEU");
    public static final int VERSION = CryptoParams.FORMAT_VERSION;
    public static final int KIND_CONTRIBUTION = 1;
    public static final int KIND_AGGREGATE = 2;
    public static final int HEADER_BYTES = 98;

    private Wire() {
    }

    /** The 98-byte header followed by the ciphertexts, each 2 * keyBits / 8 bytes, unsigned big-endian. */
    public static byte[] encode(int kind, CryptoParams params, PublicKey key, long roundId, int values,
                                int contributors, BigInteger[] ciphertexts) {
        if (ciphertexts.length != params.plaintextsFor(values)) {
            throw new CodecException(values + " values need " + params.plaintextsFor(values) + " ciphertexts, got "
                    + ciphertexts.length);
        }
        int width = params.ciphertextBytes();
        ByteBuffer out = ByteBuffer.allocate(HEADER_BYTES + ciphertexts.length * width);
        out.put(MAGIC).putShort((short) VERSION).putShort((short) kind);
        out.put(params.fingerprint()).put(key.fingerprint());
        out.putLong(roundId);
        out.putShort((short) params.keyBits).put((byte) params.quantBits).put((byte) params.slotBits());
        out.putShort((short) params.slotsPerPlaintext());
        out.putInt(values).putInt(ciphertexts.length).putInt(contributors);
        for (BigInteger c : ciphertexts) {
            out.put(Bytes.unsigned(c, width));
        }
        return out.array();
    }
}
