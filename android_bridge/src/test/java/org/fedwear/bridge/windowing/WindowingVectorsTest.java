package org.fedwear.bridge.windowing;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import org.fedwear.bridge.Vectors;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.junit.BeforeClass;
import org.junit.Test;

/** Windows of a recorded synthetic stream equal the Python SDK's, whatever the chunks the stream arrives in. */
public class WindowingVectorsTest {
    private static JSONObject vectors;
    private static double[] timestamps;
    private static double[][] values;
    private static int[] labels;

    @BeforeClass
    public static void load() throws Exception {
        vectors = Vectors.load("windows.json");
        timestamps = Vectors.doubles(vectors.getJSONArray("timestamps"));
        JSONArray rows = vectors.getJSONArray("values");
        values = new double[rows.length()][];
        for (int i = 0; i < values.length; i++) {
            values[i] = Vectors.doubles(rows.getJSONArray(i));
        }
        labels = Vectors.ints(vectors.getJSONArray("labels"));
    }

    private static Windows feed(WindowSpec spec, int[] chunks) {
        StreamWindower windower = new StreamWindower(spec);
        List<Windows> parts = new ArrayList<>();
        int start = 0;
        for (int c = 0; start < timestamps.length; c++) {
            int end = Math.min(timestamps.length, start + chunks[c % chunks.length]);
            parts.add(windower.push(Arrays.copyOfRange(timestamps, start, end), Arrays.copyOfRange(values, start, end),
                    Arrays.copyOfRange(labels, start, end)));
            start = end;
        }
        parts.add(windower.flush());
        return Windows.concat(parts);
    }

    private static void assertSame(String what, JSONObject expected, Windows got) throws JSONException {
        JSONArray data = expected.getJSONArray("data");
        assertEquals(what, data.length(), got.size());
        assertArrayEquals(what, Vectors.ints(expected.getJSONArray("labels")), got.labels);
        assertArrayEquals(what, Vectors.doubles(expected.getJSONArray("start_s")), got.startS, 1e-9);
        assertArrayEquals(what, Vectors.doubles(expected.getJSONArray("label_share")), got.labelShare, 1e-12);
        double worst = 0;
        for (int w = 0; w < got.size(); w++) {
            JSONArray window = data.getJSONArray(w);
            for (int r = 0; r < window.length(); r++) {
                double[] row = Vectors.doubles(window.getJSONArray(r));
                for (int c = 0; c < row.length; c++) {
                    worst = Math.max(worst, Math.abs(row[c] - got.data[w][r][c]));
                }
            }
        }
        assertTrue(what + ": largest difference " + worst, worst <= 1e-6);
    }

    @Test
    public void windowsEqualPythonsInOneChunkAndInManyChunks() throws JSONException {
        JSONObject specs = vectors.getJSONObject("specs");
        Random random = new Random(3);
        int[] randomChunks = new int[50];
        for (int i = 0; i < randomChunks.length; i++) {
            randomChunks[i] = 1 + random.nextInt(40);
        }
        for (Iterator<String> names = specs.keys(); names.hasNext(); ) {
            String name = names.next();
            JSONObject expected = specs.getJSONObject(name);
            WindowSpec spec = new WindowSpec(expected.getInt("length"), expected.getDouble("rate_hz"),
                    expected.getDouble("overlap"), expected.getDouble("max_gap_s"), 6);
            assertTrue(name + " has windows", expected.getJSONArray("data").length() > 3);
            assertSame(name + ", one chunk", expected, feed(spec, new int[] {timestamps.length}));
            assertSame(name + ", one sample at a time", expected, feed(spec, new int[] {1}));
            assertSame(name + ", random chunks", expected, feed(spec, randomChunks));
        }
    }

    @Test
    public void theRecordingHoldsWhatTheRulesAreAbout() {
        int repeats = 0;
        int unlabelled = 0;
        double gap = 0;
        for (int i = 1; i < timestamps.length; i++) {
            repeats += timestamps[i] == timestamps[i - 1] ? 1 : 0;
            unlabelled += labels[i] == StreamWindower.NO_LABEL ? 1 : 0;
            gap = Math.max(gap, timestamps[i] - timestamps[i - 1]);
        }
        assertTrue("repeated timestamps", repeats > 5);
        assertTrue("unlabelled samples", unlabelled > 5);
        assertTrue("a gap over 0.5 s", gap > 0.5);
    }
}
