package org.fedwear.bridge.client;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.fedwear.bridge.crypto.Bytes;

/**
 * A device attestation key: EC P-256, ECDSA with SHA-256. The public key goes to the server at
 * enrolment; each upload is signed. {@link FileDeviceKey} keeps the private key in the app's
 * private storage; an app may implement this over the Android Keystore instead.
 */
public interface DeviceKey {
    /** DER SubjectPublicKeyInfo of the public key (Java: {@code PublicKey.getEncoded()}). */
    byte[] publicKeyDer() throws IOException;

    /** DER ECDSA signature (SHA256withECDSA) of the message. */
    byte[] sign(byte[] message) throws IOException;

    /** The 44 bytes an upload's signature covers: "FWSG" | u64 round id | SHA-256(payload). */
    static byte[] uploadMessage(long roundId, byte[] payload) {
        return ByteBuffer.allocate(44).put(Bytes.ascii("FWSG")).putLong(roundId).put(Bytes.sha256(payload)).array();
    }
}
