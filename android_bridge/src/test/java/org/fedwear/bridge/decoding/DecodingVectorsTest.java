package org.fedwear.bridge.decoding;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import org.fedwear.bridge.Vectors;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/** Decoding window by window gives the Python SDK's decoded probabilities; bad tables are refused. */
public class DecodingVectorsTest {
    private static double[][] counts;
    private static double[][] probs;
    private static long[] recordings;
    private static double[][] decoded;

    private static double[][] rows(JSONArray array) throws Exception {
        double[][] out = new double[array.length()][];
        for (int i = 0; i < out.length; i++) {
            out[i] = Vectors.doubles(array.getJSONArray(i));
        }
        return out;
    }

    @BeforeClass
    public static void load() throws Exception {
        JSONObject vectors = Vectors.load("decoding.json");
        counts = rows(vectors.getJSONArray("counts"));
        probs = rows(vectors.getJSONArray("probs"));
        recordings = Vectors.longs(vectors.getJSONArray("recordings"));
        decoded = rows(vectors.getJSONArray("decoded"));
    }

    @Test
    public void streamingDecodingMatchesThePythonSdk() {
        ForwardFilter filter = new ForwardFilter(TransitionModel.fromCounts(counts));
        int starts = 0;
        double moved = 0;
        for (int w = 0; w < probs.length; w++) {
            if (w == 0 || recordings[w] != recordings[w - 1]) {
                filter.reset();
                starts++;
            }
            double[] got = filter.update(probs[w]);
            assertArrayEquals("window " + w, decoded[w], got, 1e-12);
            for (int j = 0; j < got.length; j++) {
                moved = Math.max(moved, Math.abs(got[j] - probs[w][j]));
            }
        }
        assertEquals(3, starts);
        assertTrue("decoding changes the probabilities", moved > 0.1);
    }

    @Test
    public void refusesTablesOfTheWrongShapeOrWithNegativeCounts() {
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class,
                () -> TransitionModel.fromCounts(new double[][] {{1, 2}, {3, 4}, {5}}));
        assertTrue(shape.getMessage(), shape.getMessage().contains("(classes + 1) x classes"));
        IllegalArgumentException negative = assertThrows(IllegalArgumentException.class,
                () -> TransitionModel.fromCounts(new double[][] {{1, 2}, {3, -4}, {5, 6}}));
        assertTrue(negative.getMessage(), negative.getMessage().contains("non-negative"));
        assertThrows(IllegalArgumentException.class,
                () -> TransitionModel.fromCounts(new double[][] {{1, Double.NaN}, {3, 4}, {5, 6}}));
        ForwardFilter filter = new ForwardFilter(TransitionModel.fromCounts(counts));
        assertThrows(IllegalArgumentException.class, () -> filter.update(new double[] {1.0}));
    }

    @Test
    public void takesATrainersFloatProbabilities() {
        ForwardFilter wide = new ForwardFilter(TransitionModel.fromCounts(counts));
        ForwardFilter narrow = new ForwardFilter(TransitionModel.fromCounts(counts));
        for (int w = 0; w < 5; w++) {
            float[] single = new float[probs[w].length];
            double[] same = new double[single.length];
            for (int j = 0; j < single.length; j++) {
                single[j] = (float) probs[w][j];
                same[j] = single[j];
            }
            assertArrayEquals(wide.update(same), narrow.update(single), 0.0);
        }
    }
}
