package org.fedwear.bridge.crypto;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.math.BigInteger;
import java.security.SecureRandom;
import java.util.Random;
import org.fedwear.bridge.Vectors;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/** Encryption, packing and the header on their own: round trips, homomorphic sums, the codec bound, refusals. */
public class CodecTest {
    private static PublicKey key;
    private static TestDecryptor decryptor;
    private static final CryptoParams PARAMS = new CryptoParams(2048, 16, 1.0, 20, 100, "short-exponent", 2);

    @BeforeClass
    public static void load() throws Exception {
        JSONObject codec = Vectors.load("codec.json");
        key = Vectors.key(codec);
        JSONObject k = codec.getJSONObject("key");
        decryptor = new TestDecryptor(key, Vectors.hex(k.getString("p")), Vectors.hex(k.getString("q")));
    }

    @Test
    public void barrettReductionEqualsBigIntegerMod() {
        ModularMultiplier multiplier = new ModularMultiplier(key.nSquare);
        Random random = new Random(1);
        for (int i = 0; i < 200; i++) {
            BigInteger a = new BigInteger(4096, random).mod(key.nSquare);
            BigInteger b = i == 0 ? key.nSquare.subtract(BigInteger.ONE) : new BigInteger(4096, random).mod(key.nSquare);
            assertEquals(a.multiply(b).mod(key.nSquare), multiplier.multiply(a, b));
        }
    }

    @Test
    public void packingRoundTripsAndRefusesASlotBeyondItsBits() {
        Random random = new Random(2);
        long[] slots = new long[1000];
        long limit = 1L << PARAMS.slotBits();
        for (int i = 0; i < slots.length; i++) {
            slots[i] = i < 3 ? limit - 1 : (long) (random.nextDouble() * limit);
        }
        BigInteger[] plaintexts = Packing.pack(slots, PARAMS);
        assertEquals(PARAMS.plaintextsFor(998), plaintexts.length);
        for (BigInteger m : plaintexts) {
            assertTrue(m.bitLength() <= PARAMS.keyBits - 1);
        }
        assertArrayEquals(slots, TestDecryptor.unpack(plaintexts, slots.length, PARAMS));
        slots[5] = limit;
        try {
            Packing.pack(slots, PARAMS);
            fail("packed a slot beyond its bits");
        } catch (CodecException e) {
            assertTrue(e.getMessage().contains("slot 5"));
        }
    }

    @Test
    public void aSumOfContributionsDecryptsToTheWeightedMeanWithinTheCodecBound() throws Exception {
        Random random = new Random(3);
        int values = 200;
        int[] weights = {100, 37, 1};
        Randomiser live = new ShortExponentRandomiser(key, 4, key.bits / 2, null, new SecureRandom());
        UpdateEncoder encoder = new UpdateEncoder(PARAMS, key, live, Quantised.randomUniforms());
        BigInteger[] sum = null;
        double[] weighted = new double[values];
        for (int weight : weights) {
            float[] update = new float[values];
            for (int i = 0; i < values; i++) {
                update[i] = (float) (random.nextGaussian() * 0.6);
                weighted[i] += Math.max(-1, Math.min(1, update[i])) * weight;
            }
            byte[] payload = encoder.encode(update, weight, 77).payload;
            TestDecryptor.Parsed parsed = TestDecryptor.parse(payload, PARAMS);
            sum = sum == null ? parsed.ciphertexts : multiply(sum, parsed.ciphertexts);
        }
        BigInteger[] plaintexts = new BigInteger[sum.length];
        for (int i = 0; i < sum.length; i++) {
            plaintexts[i] = decryptor.decrypt(sum[i]);
        }
        long[] slots = TestDecryptor.unpack(plaintexts, values + 2, PARAMS);
        int total = 100 + 37 + 1;
        assertEquals(total, slots[values]);
        assertEquals(weights.length, slots[values + 1]);
        double bound = weights.length * PARAMS.step() * PARAMS.maxWeight / total;
        for (int i = 0; i < values; i++) {
            double mean = (slots[i] * PARAMS.step() - weights.length * PARAMS.clip) * PARAMS.maxWeight / total;
            assertEquals("value " + i, weighted[i] / total, mean, bound);
        }
    }

    private static BigInteger[] multiply(BigInteger[] a, BigInteger[] b) {
        BigInteger[] out = new BigInteger[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = a[i].multiply(b[i]).mod(key.nSquare);
        }
        return out;
    }

    @Test
    public void theHeaderCarriesTheDocumentedFields() throws Exception {
        UpdateEncoder encoder = new UpdateEncoder(PARAMS, key, new StandardRandomiser(key), Quantised.randomUniforms());
        byte[] payload = encoder.encode(new float[] {0.5f, -0.25f, 3f}, 9, 0x0102030405L).payload;
        TestDecryptor.Parsed parsed = TestDecryptor.parse(payload, PARAMS);
        assertEquals(2, parsed.version);
        assertEquals(Wire.KIND_CONTRIBUTION, parsed.kind);
        assertArrayEquals(PARAMS.fingerprint(), parsed.paramsFingerprint);
        assertArrayEquals(key.fingerprint(), parsed.keyFingerprint);
        assertEquals(0x0102030405L, parsed.roundId);
        assertEquals(2048, parsed.keyBits);
        assertEquals(16, parsed.quantBits);
        assertEquals(PARAMS.slotBits(), parsed.slotBits);
        assertEquals(PARAMS.slotsPerPlaintext(), parsed.slotsPerPlaintext);
        assertEquals(3, parsed.values);
        assertEquals(1, parsed.contributors);
        assertEquals(98 + 512, payload.length);
        long[] slots = decryptor.slots(payload, PARAMS);
        double clipped = (1.0 * 9 / 100 + PARAMS.clip) / PARAMS.step();  // 3.0 clipped to 1, weighted 9 of 100
        assertTrue(slots[2] == (long) Math.floor(clipped) || slots[2] == (long) Math.ceil(clipped));
        assertEquals(9, slots[3]);
        assertEquals(1, slots[4]);
    }

    @Test
    public void guardBitsWidenEverySlotAndChangeTheFingerprint() {
        CryptoParams plain = new CryptoParams(2048, 16, 1.0, 1000, 1000, "standard", 0);
        CryptoParams guarded = new CryptoParams(2048, 16, 1.0, 1000, 1000, "standard", 3);
        assertEquals(26, plain.slotBits());
        assertEquals(78, plain.slotsPerPlaintext());
        assertEquals(29, guarded.slotBits());
        assertEquals(70, guarded.slotsPerPlaintext());
        assertTrue(!Bytes.hex(plain.fingerprint()).equals(Bytes.hex(guarded.fingerprint())));
        CryptoParams otherRandomiser = new CryptoParams(2048, 16, 1.0, 1000, 1000, "short-exponent", 0);
        assertArrayEquals(plain.fingerprint(), otherRandomiser.fingerprint());
    }

    @Test
    public void badUpdatesAndParametersAreRefusedWithAReason() {
        String[] expected = {"NaN", "empty", "weight", "guard_bits", "key_bits", "max_weight"};
        Runnable[] attempts = {
            () -> Quantised.of(new float[] {1f, Float.NaN}, 1, PARAMS, () -> 0.5),
            () -> Quantised.of(new float[0], 1, PARAMS, () -> 0.5),
            () -> Quantised.of(new float[] {1f}, 101, PARAMS, () -> 0.5),
            () -> new CryptoParams(2048, 16, 1.0, 20, 100, "standard", 9),
            () -> new CryptoParams(1024, 16, 1.0, 20, 100, "standard", 0),
            () -> new CryptoParams(2048, 4, 1.0, 20, 100, "standard", 0),
        };
        for (int i = 0; i < attempts.length; i++) {
            try {
                attempts[i].run();
                fail("accepted: " + expected[i]);
            } catch (CodecException e) {
                assertTrue(e.getMessage(), e.getMessage().contains(expected[i]));
            }
        }
    }

    @Test
    public void stochasticRoundingIsUnbiased() {
        float[] update = new float[20000];
        java.util.Arrays.fill(update, 0.3f);
        Quantised q = Quantised.of(update, 100, PARAMS, Quantised.randomUniforms());
        double mean = 0;
        for (int i = 0; i < update.length; i++) {
            mean += q.slots[i];
        }
        mean /= update.length;
        double exact = (0.3f + PARAMS.clip) / PARAMS.step();
        assertEquals(exact, mean, 0.02);  // the rounding's standard error here is below 0.004
        assertTrue(mean != Math.floor(exact) && mean != Math.ceil(exact));
    }
}
