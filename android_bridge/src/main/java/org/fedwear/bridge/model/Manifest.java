package org.fedwear.bridge.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * What a device needs to know about a bundle's model (docs/bundle.md, manifest format 2): its input
 * (windows or feature vectors), its head (classification or regression), the weight layouts and which
 * shared tensor each personal tensor starts as.
 */
public final class Manifest {
    public static final int FORMAT = 2;
    public static final String MODEL_FILE = "model.tflite";
    public static final String MANIFEST_FILE = "manifest.json";

    public final int modelVersion;
    /** "window" (a multichannel time series) or "features" (a vector). */
    public final String inputKind;
    /** The input's shape without the batch: [length, channels] or [features]. */
    public final int[] inputShape;
    /** Sampling rate of a window input (NaN for features). */
    public final double rateHz;
    /** Channel names of a window input, or feature names. */
    public final List<String> inputNames;
    /** "classification" or "regression". */
    public final String headKind;
    /** Class names in output order (empty for regression). */
    public final List<String> labelNames;
    public final WeightLayout shared;
    public final WeightLayout personal;
    /** Pairs {personal tensor, shared tensor}: the personal layers start as copies of these shared ones. */
    public final List<String[]> personalCopies;
    public final String modelSha256;
    public final List<String> signatures;
    /** Every file of the bundle: model, manifest, and the inference models the manifest lists. */
    public final List<String> files;

    private Manifest(JSONObject raw) throws JSONException {
        modelVersion = raw.getInt("model_version");
        JSONObject input = raw.getJSONObject("input");
        inputKind = input.getString("kind");
        JSONArray dims = input.getJSONArray("shape");
        inputShape = new int[dims.length()];
        for (int i = 0; i < inputShape.length; i++) {
            inputShape[i] = dims.getInt(i);
        }
        if (inputKind.equals("window") && inputShape.length == 2) {
            rateHz = input.getDouble("rate_hz");
            inputNames = strings(input.getJSONArray("channels"));
        } else if (inputKind.equals("features") && inputShape.length == 1) {
            rateHz = Double.NaN;
            inputNames = strings(input.getJSONArray("names"));
        } else {
            throw new JSONException("input kind " + inputKind + " with " + inputShape.length + " dimensions is not "
                    + "supported (window [length, channels] or features [count])");
        }
        if (inputNames.size() != inputShape[inputShape.length - 1]) {
            throw new JSONException("the input names " + inputNames.size() + " channels or features for a shape of "
                    + inputShape[inputShape.length - 1]);
        }
        JSONObject head = raw.getJSONObject("head");
        headKind = head.getString("kind");
        labelNames = headKind.equals("classification") ? strings(head.getJSONArray("label_names"))
                : Collections.<String>emptyList();
        shared = WeightLayout.fromJson(raw.getJSONObject("shared"));
        personal = WeightLayout.fromJson(raw.getJSONObject("personal"));
        personalCopies = copies(raw.getJSONObject("layers").getJSONArray("personal"));
        modelSha256 = raw.getString("model_sha256");
        signatures = strings(raw.getJSONArray("signatures"));
        List<String> all = new ArrayList<>();
        all.add(MODEL_FILE);
        all.add(MANIFEST_FILE);
        JSONObject inference = raw.optJSONObject("inference");
        if (inference != null) {
            for (Iterator<String> kinds = inference.keys(); kinds.hasNext();) {
                all.add(inference.getJSONObject(kinds.next()).getString("file"));
            }
        }
        files = Collections.unmodifiableList(all);
    }

    /** Parses manifest.json; a BundleException names what is wrong. */
    public static Manifest fromJson(String text) {
        try {
            JSONObject raw = new JSONObject(text);
            int format = raw.optInt("format", -1);
            if (format != FORMAT) {
                throw new BundleException("bundle format " + raw.opt("format") + " is not supported"
                        + (format == 1 ? " any more: export the model again" : "")
                        + " (this library reads format " + FORMAT + ")");
            }
            return new Manifest(raw);
        } catch (JSONException e) {
            throw new BundleException("not a valid bundle manifest: " + e.getMessage());
        }
    }

    public int numClasses() {
        return labelNames.size();
    }

    /** Samples per window of a window input. */
    public int windowLength() {
        requireWindows();
        return inputShape[0];
    }

    /**
     * Refuses a bundle this library cannot train: it takes windows and classifies (feature vectors and
     * regression heads are trained by the Python SDK).
     */
    public void requireWindowClassifier() {
        requireWindows();
        if (!headKind.equals("classification")) {
            throw new BundleException("this bundle's head is " + headKind + "; this library trains classification "
                    + "heads (the Python SDK trains regression heads)");
        }
    }

    private void requireWindows() {
        if (!inputKind.equals("window")) {
            throw new BundleException("this bundle takes " + inputKind + ", not windows; this library trains "
                    + "window bundles (the Python SDK trains feature vectors)");
        }
    }

    private List<String[]> copies(JSONArray layers) throws JSONException {
        List<String[]> out = new ArrayList<>();
        for (int i = 0; i < layers.length(); i++) {
            JSONObject layer = layers.getJSONObject(i);
            String type = layer.getString("type");
            if (type.equals("dense") || type.equals("conv1d")) {
                for (String part : new String[] {"/kernel", "/bias"}) {
                    String mine = layer.getString("name") + part;
                    String theirs = layer.getString("copy_of") + part;
                    if (personal.tensor(mine).size() != shared.tensor(theirs).size()) {
                        throw new JSONException(mine + " and " + theirs + " differ in size");
                    }
                    out.add(new String[] {mine, theirs});
                }
            }
        }
        return Collections.unmodifiableList(out);
    }

    private static List<String> strings(JSONArray array) throws JSONException {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < array.length(); i++) {
            out.add(array.getString(i));
        }
        return Collections.unmodifiableList(out);
    }
}
