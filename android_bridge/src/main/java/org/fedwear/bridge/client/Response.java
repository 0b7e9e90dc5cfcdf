package org.fedwear.bridge.client;

import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.json.JSONException;
import org.json.JSONObject;

/** An HTTP answer: status, headers (names in lower case) and body. */
public final class Response {
    public final int status;
    public final Map<String, String> headers;
    public final byte[] body;

    Response(int status, Map<String, String> headers, byte[] body) {
        this.status = status;
        this.headers = headers;
        this.body = body;
    }

    /** The body as a JSON object. */
    public JSONObject json() throws JSONException {
        return new JSONObject(new String(body, StandardCharsets.UTF_8));
    }

    /** A header's value, or null. */
    public String header(String name) {
        return headers.get(name.toLowerCase(java.util.Locale.ROOT));
    }
}
