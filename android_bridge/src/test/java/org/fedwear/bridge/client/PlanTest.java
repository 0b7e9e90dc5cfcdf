package org.fedwear.bridge.client;

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
}
