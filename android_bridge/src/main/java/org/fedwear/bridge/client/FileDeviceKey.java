package org.fedwear.bridge.client;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.Signature;
import java.security.spec.ECGenParameterSpec;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.Base64;
import org.fedwear.bridge.io.Storage;
import org.json.JSONException;
import org.json.JSONObject;

/** An EC P-256 device key in one owner-only file: {"private": PKCS#8 DER, "public": SPKI DER}, base64. */
public final class FileDeviceKey implements DeviceKey {
    private final PrivateKey privateKey;
    private final byte[] publicDer;

    private FileDeviceKey(PrivateKey privateKey, byte[] publicDer) {
        this.privateKey = privateKey;
        this.publicDer = publicDer;
    }

    /** The key stored in {@code file}, or a new one written there (mode 0600) when the file does not exist. */
    public static FileDeviceKey loadOrCreate(File file) throws IOException {
        try {
            if (file.exists()) {
                JSONObject raw = new JSONObject(new String(Files.readAllBytes(file.toPath()), StandardCharsets.UTF_8));
                byte[] pkcs8 = Base64.getDecoder().decode(raw.getString("private"));
                PrivateKey key = KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(pkcs8));
                return new FileDeviceKey(key, Base64.getDecoder().decode(raw.getString("public")));
            }
            KeyPairGenerator generator = KeyPairGenerator.getInstance("EC");
            generator.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair pair = generator.generateKeyPair();
            String text = new JSONObject()
                    .put("private", Base64.getEncoder().encodeToString(pair.getPrivate().getEncoded()))
                    .put("public", Base64.getEncoder().encodeToString(pair.getPublic().getEncoded())).toString();
            Storage.writeAtomically(file, text.getBytes(StandardCharsets.UTF_8), true);
            return new FileDeviceKey(pair.getPrivate(), pair.getPublic().getEncoded());
        } catch (GeneralSecurityException | JSONException | IllegalArgumentException e) {
            throw new IOException(file + ": not a device key file (" + e.getMessage() + ")", e);
        }
    }

    @Override
    public byte[] publicKeyDer() {
        return publicDer.clone();
    }

    @Override
    public byte[] sign(byte[] message) throws IOException {
        try {
            Signature signature = Signature.getInstance("SHA256withECDSA");
            signature.initSign(privateKey);
            signature.update(message);
            return signature.sign();
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot sign with the device key: " + e.getMessage(), e);
        }
    }
}
