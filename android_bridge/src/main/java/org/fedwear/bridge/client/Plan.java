package org.fedwear.bridge.client;

import java.time.Instant;
import java.time.format.DateTimeParseException;
import org.fedwear.bridge.crypto.CryptoParams;
import org.fedwear.bridge.crypto.PublicKey;
import org.fedwear.bridge.model.Hyperparameters;
import org.json.JSONArray;
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
    /** Number of shared weights: the length of the shared-weight delta that starts every upload. */
    public final int sharedValues;
    /**
     * K, the label count of the activity-transition counts the job aggregates, or 0 when it aggregates
     * none; with K > 0 an upload carries {@link #transitionValues()} more values after the shared delta.
     */
    public final int transitionClasses;
    /** The service selected this device for {@link #round} when it checked in (true from a service without
     * selection); only selected devices train and upload. */
    public final boolean selected;
    /** When not selected: seconds to wait before checking in again; null otherwise. */
    public final Integer retryAfter;
    public final JSONObject raw;
    /** The federation's transition counts, (K + 1) x K, or null (none published yet, or no transitions). */
    private final double[][] transitionCounts;

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
        JSONObject transitions = raw.isNull("transitions") ? null : raw.getJSONObject("transitions");
        transitionClasses = transitions == null ? 0 : transitionClasses(transitions, sharedValues);
        transitionCounts = transitions == null || transitions.isNull("counts") ? null
                : transitionCounts(transitions.getJSONArray("counts"), transitionClasses);
    }

    private static int transitionClasses(JSONObject transitions, int sharedValues) throws JSONException {
        Object classes = transitions.get("classes");
        if (!(classes instanceof Integer || classes instanceof Long) || ((Number) classes).longValue() < 1) {
            throw new JSONException("transitions classes must be an integer >= 1, got " + classes);
        }
        long k = ((Number) classes).longValue();
        if (k > 46_340 || sharedValues + (k + 1) * k > Integer.MAX_VALUE) {  // (K + 1) * K and the upload fit an int
            throw new JSONException("transitions classes " + k + " is too large for an upload");
        }
        return (int) k;
    }

    private static double[][] transitionCounts(JSONArray counts, int classes) throws JSONException {
        if (counts.length() != classes + 1) {
            throw new JSONException("transitions counts must have classes + 1 = " + (classes + 1) + " rows, got "
                    + counts.length());
        }
        double[][] table = new double[classes + 1][classes];
        for (int i = 0; i < table.length; i++) {
            JSONArray row = counts.getJSONArray(i);
            if (row.length() != classes) {
                throw new JSONException("transitions counts row " + i + " has " + row.length() + " values, "
                        + classes + " expected");
            }
            for (int j = 0; j < classes; j++) {
                Object cell = row.get(j);
                double c = cell instanceof Number ? ((Number) cell).doubleValue() : Double.NaN;
                if (!(Double.isFinite(c) && c >= 0)) {
                    throw new JSONException("transitions counts must be finite non-negative numbers, row " + i
                            + " column " + j + " is " + cell);
                }
                table[i][j] = c;
            }
        }
        return table;
    }

    /** Parses a plan; an IllegalArgumentException names what is missing or wrong. */
    public static Plan fromJson(JSONObject raw) {
        try {
            return new Plan(raw);
        } catch (JSONException e) {
            throw new IllegalArgumentException("not a valid plan: " + e.getMessage(), e);
        }
    }

    /** Values an upload carries after the shared delta: (K + 1) * K transition counts, or 0 without transitions. */
    public int transitionValues() {
        return (transitionClasses + 1) * transitionClasses;
    }

    /** Values of an upload: {@link #sharedValues} plus {@link #transitionValues()}. */
    public int uploadValues() {
        return sharedValues + transitionValues();
    }

    /**
     * A copy of the federation's transition counts ((K + 1) x K; row 0: first labels of recordings,
     * row 1 + i: labels after label i) for {@code TransitionModel.fromCounts}, or null when the job has no
     * transitions or no round has published them yet.
     */
    public double[][] transitionCounts() {
        if (transitionCounts == null) {
            return null;
        }
        double[][] copy = new double[transitionCounts.length][];
        for (int i = 0; i < copy.length; i++) {
            copy[i] = transitionCounts[i].clone();
        }
        return copy;
    }

    /** True when the round is open and trains this plan's model version. */
    public boolean hasOpenRound() {
        return round != null && "open".equals(round.status) && round.modelVersion == modelVersion;
    }
}
