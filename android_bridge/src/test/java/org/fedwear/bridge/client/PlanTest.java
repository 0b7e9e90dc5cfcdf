package org.fedwear.bridge.client;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.time.Instant;
import org.fedwear.bridge.Vectors;
import org.fedwear.bridge.crypto.CodecException;
import org.json.JSONObject;
import org.junit.Test;

public class PlanTest {
    private static JSONObject plan(String round, String extraCrypto) throws Exception {
        String key = Vectors.load("codec.json").getJSONObject("key").getString("json");
        return new JSONObject("{\"job_id\": \"j1\", \"job_status\": \"running\", \"model_version\": 3,"
                + " \"round\": " + round + ", \"hyperparameters\": {\"epochs\": 2, \"batch_size\": 32,"
                + " \"lr\": 0.02, \"momentum\": 0.9, \"personal_epochs\": 5}, \"bundle_sha256\": \"ab\","
                + " \"shared_values\": 15781, \"min_devices\": 2, \"max_devices\": 5}")
                .put("crypto", new JSONObject("{\"key_bits\": 2048, \"quant_bits\": 16, \"clip\": 1.0,"
                        + " \"max_contributors\": 50, \"max_weight\": 500, \"randomiser\": \"short-exponent\","
                        + " \"guard_bits\": 0" + extraCrypto + "}").put("public_key", key));
    }

    @Test
    public void aPlanNamesTheRoundIdToUploadToAndItsDeadline() throws Exception {
        Plan parsed = Plan.fromJson(plan("{\"id\": 41, \"number\": 2, \"status\": \"open\", \"model_version\": 3,"
                + " \"deadline\": \"2030-01-02T03:04:05.123456Z\"}", ""));
        assertEquals(41, parsed.round.id);
        assertEquals(2, parsed.round.number);
        assertEquals(Instant.parse("2030-01-02T03:04:05.123456Z"), parsed.round.deadline);
        assertTrue(parsed.hasOpenRound());
        assertEquals(50, parsed.params.maxContributors);
        assertEquals(2048, parsed.publicKey.bits);
        assertEquals(32, parsed.hyperparameters.batchSize);
        assertTrue(parsed.selected);  // a service without selection: every device takes part
        assertNull(parsed.retryAfter);
    }

    @Test
    public void aDeviceNotSelectedIsToldWhenToCheckInAgain() throws Exception {
        Plan parsed = Plan.fromJson(plan("{\"id\": 41, \"number\": 2, \"status\": \"open\", \"model_version\": 3,"
                + " \"deadline\": \"2030-01-02T03:04:05Z\"}", "").put("selected", false).put("retry_after", 45));
        assertFalse(parsed.selected);
        assertEquals(Integer.valueOf(45), parsed.retryAfter);
    }

    @Test
    public void aRoundOfAnotherModelVersionOrNoneIsNotOpenForThisPlan() throws Exception {
        Plan stale = Plan.fromJson(plan("{\"id\": 41, \"number\": 2, \"status\": \"open\", \"model_version\": 2,"
                + " \"deadline\": \"2030-01-02T03:04:05Z\"}", ""));
        assertFalse(stale.hasOpenRound());
        Plan none = Plan.fromJson(plan("null", ""));
        assertNull(none.round);
        assertFalse(none.hasOpenRound());
    }

    @Test
    public void anUnknownCryptoFieldAsksForAnUpgrade() throws Exception {
        try {
            Plan.fromJson(plan("null", ", \"dp_sigma\": 0.5"));
            fail("accepted a crypto field it does not know");
        } catch (CodecException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("'dp_sigma' is unknown to this library: upgrade"));
        }
    }

    @Test
    public void aPlanWithoutTransitionsUploadsTheSharedDeltaOnly() throws Exception {
        JSONObject[] plans = {plan("null", ""), plan("null", "").put("transitions", JSONObject.NULL)};
        for (JSONObject raw : plans) {
            Plan parsed = Plan.fromJson(raw);
            assertEquals(0, parsed.transitionClasses);
            assertEquals(0, parsed.transitionValues());
            assertEquals(15781, parsed.uploadValues());
            assertNull(parsed.transitionCounts());
        }
    }

    @Test
    public void aPlanWithTransitionsAddsTheirCountsToAnUploadAndGivesTheFederationsTable() throws Exception {
        Plan parsed = Plan.fromJson(plan("null", "").put("transitions",
                new JSONObject("{\"classes\": 2, \"counts\": [[3, 1.5], [0, 2], [4, 0]]}")));
        assertEquals(2, parsed.transitionClasses);
        assertEquals(6, parsed.transitionValues());
        assertEquals(15781 + 6, parsed.uploadValues());
        double[][] counts = parsed.transitionCounts();
        assertEquals(3, counts.length);
        assertArrayEquals(new double[] {3, 1.5}, counts[0], 0);
        assertArrayEquals(new double[] {0, 2}, counts[1], 0);
        assertArrayEquals(new double[] {4, 0}, counts[2], 0);
        counts[0][0] = 99;  // a copy: the plan keeps its table
        assertEquals(3, parsed.transitionCounts()[0][0], 0);

        Plan unpublished = Plan.fromJson(plan("null", "").put("transitions", new JSONObject("{\"classes\": 6}")));
        assertEquals(42, unpublished.transitionValues());
        assertNull(unpublished.transitionCounts());
        assertNull(Plan.fromJson(plan("null", "").put("transitions",
                new JSONObject("{\"classes\": 6, \"counts\": null}"))).transitionCounts());
    }

    @Test
    public void malformedTransitionsAreRefusedNamingTheProblem() throws Exception {
        String[][] cases = {
            {"{\"classes\": 0}", "transitions classes must be an integer >= 1, got 0"},
            {"{\"classes\": 2.5}", "transitions classes must be an integer >= 1, got 2.5"},
            {"{\"classes\": \"2\"}", "transitions classes must be an integer >= 1, got 2"},
            {"{\"counts\": null}", "classes"},
            {"{\"classes\": 100000}", "transitions classes 100000 is too large for an upload"},
            {"{\"classes\": 2, \"counts\": [[1, 2], [3, 4]]}", "must have classes + 1 = 3 rows, got 2"},
            {"{\"classes\": 2, \"counts\": [[1, 2], [3, 4], [5]]}", "row 2 has 1 values, 2 expected"},
            {"{\"classes\": 2, \"counts\": [[1, 2], [3, -4], [5, 6]]}", "row 1 column 1 is -4"},
            {"{\"classes\": 2, \"counts\": [[1, 2], [3, 4], [5, 1e999]]}", "row 2 column 1 is Infinity"},
            {"{\"classes\": 2, \"counts\": [[1, \"2\"], [3, 4], [5, 6]]}", "row 0 column 1 is 2"},
        };
        for (String[] c : cases) {
            try {
                Plan.fromJson(plan("null", "").put("transitions", new JSONObject(c[0])));
                fail("accepted transitions " + c[0]);
            } catch (IllegalArgumentException e) {
                assertTrue(c[0] + ": " + e.getMessage(), e.getMessage().startsWith("not a valid plan: "));
                assertTrue(c[0] + ": " + e.getMessage(), e.getMessage().contains(c[1]));
            }
        }
        try {
            Plan.fromJson(plan("null", "").put("transitions", 3));
            fail("accepted transitions that are not an object");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("transitions"));
        }
    }
}
