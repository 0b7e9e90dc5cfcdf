package org.fedwear.bridge.crypto;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.io.File;
import java.math.BigInteger;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.util.Iterator;
import org.fedwear.bridge.Vectors;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/** The Java codec against the Python SDK's vectors: same layout, fingerprints, slots, plaintexts, bytes. */
public class CodecVectorsTest {
    private static JSONObject codec;
    private static PublicKey key;

    @Rule
    public TemporaryFolder folder = new TemporaryFolder();

    @BeforeClass
    public static void load() throws Exception {
        codec = Vectors.load("codec.json");
        key = Vectors.key(codec);
    }

    @Test
    public void parameterLayoutsAndFingerprintsMatchPython() throws JSONException {
        JSONObject all = codec.getJSONObject("params");
        for (Iterator<String> names = all.keys(); names.hasNext(); ) {
            String name = names.next();
            JSONObject expected = all.getJSONObject(name);
            CryptoParams params = Vectors.params(codec, name);
            assertEquals(name, expected.getInt("slot_bits"), params.slotBits());
            assertEquals(name, expected.getInt("slots_per_plaintext"), params.slotsPerPlaintext());
            assertEquals(name, expected.getString("fingerprint"), Bytes.hex(params.fingerprint()));
        }
    }

    @Test
    public void keyFingerprintsMatchPython() throws JSONException {
        assertEquals(codec.getJSONObject("key").getString("fingerprint"), Bytes.hex(key.fingerprint()));
        JSONObject other = codec.getJSONObject("key_3072");
        assertEquals(other.getString("fingerprint"), Bytes.hex(PublicKey.fromJson(other.getString("json")).fingerprint()));
    }

    @Test
    public void sameUniformDrawsGiveTheSameSlotsAndPlaintexts() throws JSONException {
        JSONObject q = codec.getJSONObject("quantisation");
        CryptoParams params = Vectors.params(codec, q.getString("params"));
        double[] draws = Vectors.doubles(q.getJSONArray("uniforms"));
        int[] next = {0};
        Quantised quantised = Quantised.of(Vectors.floats(q.getJSONArray("update")), q.getInt("weight"), params,
                () -> draws[next[0]++]);
        assertEquals(draws.length, next[0]);
        assertArrayEquals(Vectors.longs(q.getJSONArray("slots")), quantised.slots);
        assertEquals(q.getDouble("clipped_fraction"), quantised.clippedFraction, 0);
        assertArrayEquals(Vectors.hexes(q.getJSONArray("plaintexts")), Packing.pack(quantised.slots, params));
    }

    @Test
    public void standardRandomisersMatchPython() throws JSONException {
        JSONObject s = codec.getJSONObject("standard");
        BigInteger[] units = Vectors.hexes(s.getJSONArray("units"));
        BigInteger[] expected = Vectors.hexes(s.getJSONArray("randomisers"));
        for (int i = 0; i < units.length; i++) {
            assertEquals(expected[i], StandardRandomiser.residue(key, units[i]));
        }
    }

    @Test
    public void shortExponentRandomisersMatchPythonForEveryWindowWidth() throws JSONException {
        JSONArray cases = codec.getJSONArray("short_exponent");
        for (int c = 0; c < cases.length(); c++) {
            JSONObject v = cases.getJSONObject(c);
            ShortExponentRandomiser randomiser = new ShortExponentRandomiser(key, v.getInt("window_bits"),
                    v.getInt("exponent_bits"), Vectors.hex(v.getString("unit")), new SecureRandom());
            BigInteger[] exponents = Vectors.hexes(v.getJSONArray("exponents"));
            BigInteger[] expected = Vectors.hexes(v.getJSONArray("randomisers"));
            for (int i = 0; i < exponents.length; i++) {
                assertEquals("window bits " + v.getInt("window_bits"), expected[i],
                        randomiser.fromExponent(exponents[i]));
            }
        }
    }

    @Test
    public void payloadWithGivenRandomisersIsByteEqualToPython() throws Exception {
        JSONObject p = codec.getJSONObject("payload");
        JSONObject q = codec.getJSONObject("quantisation");
        CryptoParams params = Vectors.params(codec, p.getString("params"));
        BigInteger[] given = Vectors.hexes(p.getJSONArray("randomisers"));
        double[] draws = Vectors.doubles(q.getJSONArray("uniforms"));
        int[] next = {0};
        UpdateEncoder encoder = new UpdateEncoder(params, key, count -> given, () -> draws[next[0]++]);
        byte[] payload = encoder.encode(Vectors.floats(q.getJSONArray("update")), q.getInt("weight"),
                p.getLong("round_id")).payload;
        assertEquals(p.getString("hex"), Bytes.hex(payload));
    }

    @Test
    public void javaDecryptsThePythonPayloadToItsSlots() throws JSONException {
        JSONObject k = codec.getJSONObject("key");
        JSONObject q = codec.getJSONObject("quantisation");
        CryptoParams params = Vectors.params(codec, q.getString("params"));
        TestDecryptor decryptor = new TestDecryptor(key, Vectors.hex(k.getString("p")), Vectors.hex(k.getString("q")));
        byte[] payload = Vectors.bytes(codec.getJSONObject("payload").getString("hex"));
        TestDecryptor.Parsed header = TestDecryptor.parse(payload, params);
        assertEquals(CryptoParams.FORMAT_VERSION, header.version);
        assertEquals(codec.getJSONObject("payload").getLong("round_id"), header.roundId);
        assertEquals(1, header.contributors);
        assertArrayEquals(Vectors.longs(q.getJSONArray("slots")), decryptor.slots(payload, params));
    }

    @Test
    public void javaUsesAPoolFilledByPythonAndNeverHandsARandomiserOutTwice() throws Exception {
        JSONObject pool = codec.getJSONObject("pool");
        File file = folder.newFile("pool");
        Files.write(file.toPath(), Vectors.bytes(pool.getString("hex")));
        BigInteger[] filled = Vectors.hexes(pool.getJSONArray("randomisers"));
        RandomiserPool opened = new RandomiserPool(file, key);
        assertEquals(2, opened.size());
        assertArrayEquals(new BigInteger[] {filled[1]}, opened.take(1));
        assertArrayEquals(new BigInteger[] {filled[0]}, new RandomiserPool(file, key).take(1));
        assertEquals(0, new RandomiserPool(file, key).size());
    }
}
