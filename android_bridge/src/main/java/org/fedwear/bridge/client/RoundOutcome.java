package org.fedwear.bridge.client;

import org.json.JSONException;
import org.json.JSONObject;

/** What one participation did. */
public final class RoundOutcome {
    /** uploaded, already_uploaded, not_selected, skipped, late_refused or refused. */
    public String status = "skipped";
    public Long roundId;
    public String reason = "";
    public int windows;
    public double trainS;
    public double cryptoS;
    public long bytesUp;
    public long bytesDown;
    public double clippedFraction;
    public JSONObject answer = new JSONObject();

    RoundOutcome(Long roundId, int windows) {
        this.roundId = roundId;
        this.windows = windows;
    }

    public JSONObject toJson() {
        try {
            return new JSONObject().put("status", status).put("round_id", roundId == null ? JSONObject.NULL : roundId)
                    .put("reason", reason).put("windows", windows).put("train_s", trainS).put("crypto_s", cryptoS)
                    .put("bytes_up", bytesUp).put("bytes_down", bytesDown).put("clipped_fraction", clippedFraction)
                    .put("answer", answer);
        } catch (JSONException e) {
            throw new IllegalStateException(e);
        }
    }
}
