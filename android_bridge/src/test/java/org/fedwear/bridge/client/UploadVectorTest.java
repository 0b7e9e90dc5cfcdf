package org.fedwear.bridge.client;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertSame;

import org.junit.Test;

public class UploadVectorTest {
    @Test
    public void withoutTransitionsTheUploadIsTheSharedDelta() {
        float[] delta = {0.5f, -0.25f, 1f};
        assertSame(delta, FedWearClient.uploadVector(delta, 0));
    }

    @Test
    public void withTransitionsTheSharedDeltaIsFollowedByAZeroTableOfTransitionCounts() {
        float[] delta = {0.5f, -0.25f, 1f};
        int classes = 3;
        float[] values = FedWearClient.uploadVector(delta, (classes + 1) * classes);
        float[] expected = new float[3 + 12];
        System.arraycopy(delta, 0, expected, 0, 3);
        assertArrayEquals(expected, values, 0f);
        assertArrayEquals(new float[] {0.5f, -0.25f, 1f}, delta, 0f);  // the delta is left as it was
    }
}
