package org.fedwear.bridge.client;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import org.fedwear.bridge.crypto.CryptoParams;
import org.fedwear.bridge.crypto.PublicKey;
import org.fedwear.bridge.model.Hyperparameters;
import org.json.JSONException;
import org.json.JSONObject;

/** A device's job as {@code GET /v1/plan} describes it. */
public final class Plan {
    /** The job's current round; a device uploads to {@link #id}, not to the round's number. */
    public static final class Round {
        public final long id;
        public final int number;
        public final String status;
        public final int modelVersion;
        public final Instant deadline;

        Round(JSONObject raw) throws JSONException {
            id = raw.getLong("id");
            number = raw.getInt("number");
            status = raw.getString("status");
            modelVersion = raw.getInt("model_version");
            try {
                deadline = Instant.parse(raw.getString("deadline"));
            } catch (DateTimeParseException e) {
                throw new JSONException("round deadline is not an ISO-8601 UTC time: " + raw.getString("deadline"));
            }
        }
    }

    public final String jobId;
    public final int modelVersion;
    /** The current round, or null when the job has none. */
    public final Round round;
    public final CryptoParams params;
    public final PublicKey publicKey;
    public final Hyperparameters hyperparameters;
    public final String bundleSha256;
    public final int sharedValues;
    /** The service selected this device for {@link #round} when it checked in (true from a service without
     * selection); only selected devices train and upload. */
    public final boolean selected;
    /** When not selected: seconds to wait before checking in again; null otherwise. */
    public final Integer retryAfter;
    public final JSONObject raw;

    private Plan(JSONObject raw) throws JSONException {
        this.raw = raw;
        jobId = raw.getString("job_id");
        modelVersion = raw.getInt("model_version");
        round = raw.isNull("round") ? null : new Round(raw.getJSONObject("round"));
        JSONObject crypto = raw.getJSONObject("crypto");
        params = CryptoParams.fromJson(crypto);
        publicKey = PublicKey.fromJson(crypto.getString("public_key"));
        hyperparameters = Hyperparameters.fromJson(raw.getJSONObject("hyperparameters"));
        bundleSha256 = raw.getString("bundle_sha256");
        sharedValues = raw.getInt("shared_values");
        selected = raw.optBoolean("selected", true);
        retryAfter = raw.isNull("retry_after") ? null : raw.getInt("retry_after");
    }

    /** Parses a plan; an IllegalArgumentException names what is missing or wrong. */
    public static Plan fromJson(JSONObject raw) {
        try {
            return new Plan(raw);
        } catch (JSONException e) {
            throw new IllegalArgumentException("not a valid plan: " + e.getMessage(), e);
        }
    }

    /** True when the round is open and trains this plan's model version. */
    public boolean hasOpenRound() {
        return round != null && "open".equals(round.status) && round.modelVersion == modelVersion;
    }
}
