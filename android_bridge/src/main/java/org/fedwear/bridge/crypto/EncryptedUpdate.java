package org.fedwear.bridge.crypto;

/** A contribution ready to upload, and what its encoding did. */
public final class EncryptedUpdate {
    public final byte[] payload;
    public final double clippedFraction;
    public final int values;

    EncryptedUpdate(byte[] payload, double clippedFraction, int values) {
        this.payload = payload;
        this.clippedFraction = clippedFraction;
        this.values = values;
    }
}
