package org.fedwear.bridge;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import org.fedwear.bridge.crypto.CryptoParams;
import org.fedwear.bridge.crypto.PublicKey;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** The vectors the Python SDK wrote into the test resources (android_bridge/tools/make_vectors.py). */
public final class Vectors {
    private Vectors() {
    }

    public static JSONObject load(String name) throws IOException, JSONException {
        try (InputStream in = Vectors.class.getResourceAsStream("/vectors/" + name)) {
            if (in == null) {
                throw new IOException("test resource vectors/" + name + " is missing: run make bridge");
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            for (int n; (n = in.read(buffer)) != -1; ) {
                out.write(buffer, 0, n);
            }
            return new JSONObject(new String(out.toByteArray(), StandardCharsets.UTF_8));
        }
    }

    public static BigInteger hex(String text) {
        return new BigInteger(text, 16);
    }

    public static BigInteger[] hexes(JSONArray array) throws JSONException {
        BigInteger[] out = new BigInteger[array.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = hex(array.getString(i));
        }
        return out;
    }

    public static byte[] bytes(String hex) {
        byte[] out = new byte[hex.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16);
        }
        return out;
    }

    public static double[] doubles(JSONArray array) throws JSONException {
        double[] out = new double[array.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.isNull(i) ? Double.NaN : array.getDouble(i);
        }
        return out;
    }

    public static long[] longs(JSONArray array) throws JSONException {
        long[] out = new long[array.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.getLong(i);
        }
        return out;
    }

    public static int[] ints(JSONArray array) throws JSONException {
        int[] out = new int[array.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.getInt(i);
        }
        return out;
    }

    public static float[] floats(JSONArray array) throws JSONException {
        float[] out = new float[array.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) array.getDouble(i);
        }
        return out;
    }

    /** The parameters a codec vector names ("default", "round", "key_3072"). */
    public static CryptoParams params(JSONObject codec, String name) throws JSONException {
        return CryptoParams.fromJson(strip(codec.getJSONObject("params").getJSONObject(name)));
    }

    /** The fixed 2048-bit key of the codec vectors. */
    public static PublicKey key(JSONObject codec) throws JSONException {
        return PublicKey.fromJson(codec.getJSONObject("key").getString("json"));
    }

    private static JSONObject strip(JSONObject entry) throws JSONException {
        JSONObject out = new JSONObject(entry.toString());
        out.remove("slot_bits");
        out.remove("slots_per_plaintext");
        out.remove("fingerprint");
        return out;
    }
}
