package org.fedwear.bridge.client;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyFactory;
import java.security.Signature;
import java.security.spec.X509EncodedKeySpec;
import org.fedwear.bridge.crypto.Bytes;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class DeviceKeyTest {
    @Rule
    public TemporaryFolder folder = new TemporaryFolder();

    @Test
    public void theUploadMessageIsTagRoundIdAndPayloadDigest() {
        byte[] payload = {1, 2, 3};
        byte[] message = DeviceKey.uploadMessage(0x0a0b0c0dL, payload);
        assertEquals(44, message.length);
        ByteBuffer in = ByteBuffer.wrap(message);
        byte[] tag = new byte[4];
        in.get(tag);
        assertArrayEquals(Bytes.ascii("FWSG"), tag);
        assertEquals(0x0a0b0c0dL, in.getLong());
        byte[] digest = new byte[32];
        in.get(digest);
        assertArrayEquals(Bytes.sha256(payload), digest);
    }

    @Test
    public void aFileKeyIsOwnerOnlyKeptAcrossRestartsAndItsSignaturesVerify() throws Exception {
        File file = new File(folder.getRoot(), "device-key.json");
        FileDeviceKey key = FileDeviceKey.loadOrCreate(file);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file.toPath())));
        FileDeviceKey again = FileDeviceKey.loadOrCreate(file);
        assertArrayEquals(key.publicKeyDer(), again.publicKeyDer());
        byte[] message = DeviceKey.uploadMessage(7, new byte[] {9});
        Signature verify = Signature.getInstance("SHA256withECDSA");
        verify.initVerify(KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(again.publicKeyDer())));
        verify.update(message);
        assertTrue(verify.verify(again.sign(message)));
        verify.initVerify(KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(key.publicKeyDer())));
        verify.update(DeviceKey.uploadMessage(8, new byte[] {9}));
        assertFalse("a signature for round 7 verified for round 8", verify.verify(key.sign(message)));
    }
}
