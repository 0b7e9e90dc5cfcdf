package org.fedwear.bridge.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** What a device needs to know about a bundle's model (docs/bundle.md, manifest format 1). */
public final class Manifest {
    public static final int FORMAT = 1;
    public static final String MODEL_FILE = "model.tflite";
    public static final String MANIFEST_FILE = "manifest.json";

    public final int modelVersion;
    public final int windowLength;
    public final double rateHz;
    public final List<String> channels;
    public final List<String> labelNames;
    public final WeightLayout shared;
    public final WeightLayout personal;
    public final String modelSha256;
    public final List<String> signatures;

    private Manifest(JSONObject raw) throws JSONException {
        modelVersion = raw.getInt("model_version");
        windowLength = raw.getInt("window_length");
        rateHz = raw.getDouble("rate_hz");
        channels = strings(raw.getJSONArray("channels"));
        labelNames = strings(raw.getJSONArray("label_names"));
        shared = WeightLayout.fromJson(raw.getJSONObject("shared"));
        personal = WeightLayout.fromJson(raw.getJSONObject("personal"));
        modelSha256 = raw.getString("model_sha256");
        signatures = strings(raw.getJSONArray("signatures"));
    }

    /** Parses manifest.json; a BundleException names what is wrong. */
    public static Manifest fromJson(String text) {
        try {
            JSONObject raw = new JSONObject(text);
            int format = raw.optInt("format", -1);
            if (format != FORMAT) {
                throw new BundleException("bundle format " + raw.opt("format") + " is not supported (this library reads "
                        + "format " + FORMAT + ")");
            }
            return new Manifest(raw);
        } catch (JSONException e) {
            throw new BundleException("not a valid bundle manifest: " + e.getMessage());
        }
    }

    public int numClasses() {
        return labelNames.size();
    }

    private static List<String> strings(JSONArray array) throws JSONException {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < array.length(); i++) {
            out.add(array.getString(i));
        }
        return Collections.unmodifiableList(out);
    }
}
