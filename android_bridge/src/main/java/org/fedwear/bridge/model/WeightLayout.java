package org.fedwear.bridge.model;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/** The tensors of a flat float32 weight vector, in order: name, shape, offset. */
public final class WeightLayout {
    /** One weight tensor's place in the flat vector. */
    public static final class Tensor {
        public final String name;
        public final int[] shape;
        public final int offset;

        Tensor(String name, int[] shape, int offset) {
            this.name = name;
            this.shape = shape;
            this.offset = offset;
        }

        public int size() {
            int size = 1;
            for (int d : shape) {
                size *= d;
            }
            return size;
        }
    }

    public final List<Tensor> tensors;

    WeightLayout(List<Tensor> tensors) {
        this.tensors = Collections.unmodifiableList(tensors);
    }

    static WeightLayout fromJson(JSONObject raw) throws JSONException {
        JSONArray list = raw.getJSONArray("tensors");
        List<Tensor> tensors = new ArrayList<>();
        int expected = 0;
        for (int i = 0; i < list.length(); i++) {
            JSONObject t = list.getJSONObject(i);
            JSONArray dims = t.getJSONArray("shape");
            int[] shape = new int[dims.length()];
            for (int d = 0; d < shape.length; d++) {
                shape[d] = dims.getInt(d);
            }
            Tensor tensor = new Tensor(t.getString("name"), shape, t.getInt("offset"));
            if (tensor.offset != expected) {
                throw new JSONException("tensor " + tensor.name + " at offset " + tensor.offset + ", expected "
                        + expected);
            }
            expected += tensor.size();
            tensors.add(tensor);
        }
        return new WeightLayout(tensors);
    }

    /** Number of float32 values in the flat vector. */
    public int size() {
        int size = 0;
        for (Tensor t : tensors) {
            size += t.size();
        }
        return size;
    }

    /** The tensor of that name; a BundleException when the layout has none. */
    public Tensor tensor(String name) {
        for (Tensor t : tensors) {
            if (t.name.equals(name)) {
                return t;
            }
        }
        throw new BundleException("the weight layout has no tensor '" + name + "'");
    }
}
