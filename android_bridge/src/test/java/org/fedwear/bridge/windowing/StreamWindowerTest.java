package org.fedwear.bridge.windowing;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class StreamWindowerTest {
    private static final WindowSpec SPEC = new WindowSpec(4, 8.0, 0.5, 0.5, 1);  // a grid step of 0.125 s, exact in binary

    private static double[][] column(double... values) {
        double[][] out = new double[values.length][];
        for (int i = 0; i < values.length; i++) {
            out[i] = new double[] {values[i]};
        }
        return out;
    }

    @Test
    public void samplesSharingATimestampAreAveragedEvenAcrossChunks() {
        StreamWindower windower = new StreamWindower(SPEC);
        windower.push(new double[] {0.0, 0.125, 0.25}, column(0, 1, 2), null);
        windower.push(new double[] {0.25, 0.375}, column(4, 3), null);  // 0.25 holds 2 and 4: mean 3
        Windows w = Windows.concat(windower.flush(), Windows.empty());
        assertEquals(1, w.size());
        assertEquals(3.0, w.data[0][2][0], 1e-6);
        assertEquals(3.0, w.data[0][3][0], 1e-6);
        assertTrue(Double.isNaN(w.labelShare[0]));
        assertEquals(StreamWindower.NO_LABEL, w.labels[0]);
    }

    @Test
    public void aTimestampGoingBackwardsIsRefusedWithinAndAcrossChunks() {
        StreamWindower windower = new StreamWindower(SPEC);
        try {
            windower.push(new double[] {0.0, 0.2, 0.1}, column(0, 0, 0), null);
            fail("accepted a backwards timestamp");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("backwards at sample 2"));
        }
        windower.push(new double[] {1.0}, column(0), null);
        try {
            windower.push(new double[] {0.9}, column(0), null);
            fail("accepted a backwards timestamp across chunks");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("0.9 after 1.0"));
        }
    }

    @Test
    public void aGapOverTheLimitStartsANewSegment() {
        StreamWindower windower = new StreamWindower(SPEC);
        Windows first = windower.push(new double[] {0.0, 0.125, 0.25, 0.3, 1.0, 1.125, 1.25, 1.375},
                column(0, 1, 2, 2.5, 9, 10, 11, 12), new int[] {1, 1, 2, 2, 0, 0, 0, 0});
        Windows w = Windows.concat(first, windower.flush());
        // Segment one has 3 grid rows (0 .. 0.25): no window; segment two (1.0 .. 1.375) has one.
        assertEquals(1, w.size());
        assertEquals(1.0, w.startS[0], 0);
        assertEquals(9.0, w.data[0][0][0], 1e-6);
        assertEquals(0, w.labels[0]);
    }

    @Test
    public void resamplingIsLinearAndTheMajorityLabelWinsWithTheSmallestOnATie() {
        StreamWindower windower = new StreamWindower(SPEC);
        // Grid every 0.125 s; a row takes the label of the sample on its left.
        Windows w = Windows.concat(windower.push(new double[] {0.0, 0.25, 0.5, 0.75},
                column(0, 4, 8, 12), new int[] {3, 1, 2, 2}), windower.flush());
        assertEquals(2, w.size());
        assertEquals(2.0, w.data[0][1][0], 1e-6);  // halfway between 0 and 4
        assertEquals(10.0, w.data[1][3][0], 1e-6);
        assertEquals(1, w.labels[0]);  // rows 3, 3, 1, 1: a tie goes to the smaller label
        assertEquals(0.5, w.labelShare[0], 0);
        assertEquals(1, w.labels[1]);  // rows 2..5: 1, 1, 2, 2
        assertEquals(0.25, w.startS[1], 0);
    }

    @Test
    public void badInputIsRefusedWithAReason() {
        StreamWindower windower = new StreamWindower(SPEC);
        try {
            windower.push(new double[] {0.0}, column(Double.NaN), null);
            fail("accepted NaN");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("finite"));
        }
        try {
            windower.push(new double[] {0.0}, new double[][] {{1, 2}}, null);
            fail("accepted a row of the wrong width");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("1 channels"));
        }
    }
}
