package org.fedwear.bridge.model;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.Test;

public class TrainingTest {
    /** Windows whose channel means tell the three classes apart. */
    private static float[][][] windows(int[] labels, Random random) {
        float[][][] x = new float[labels.length][4][SoftmaxTrainer.CHANNELS];
        for (int i = 0; i < labels.length; i++) {
            for (float[] row : x[i]) {
                row[0] = (labels[i] == 1 ? 2f : labels[i] == 2 ? -2f : 0f) + (float) random.nextGaussian() * 0.3f;
                row[1] = (labels[i] == 0 ? 2f : 0f) + (float) random.nextGaussian() * 0.3f;
            }
        }
        return x;
    }

    private static int[] labels(int n) {
        int[] y = new int[n];
        for (int i = 0; i < n; i++) {
            y[i] = i % 3;
        }
        return y;
    }

    @Test
    public void fitVisitsEveryWindowOncePerEpochInNearEqualBatchesAndLearns() {
        SoftmaxTrainer trainer = new SoftmaxTrainer();
        int[] y = labels(10);
        float[][][] x = windows(y, new Random(1));
        List<Double> losses = Training.fit(trainer, Trainer.Part.SHARED, x, y, 30, 4, 0.5f, 0.9f, 0f, new Random(2));
        assertEquals(30, losses.size());
        assertEquals(Arrays.asList(4, 3, 3), trainer.batchSizes.subList(0, 3));  // ceil(10 / 4) = 3 batches
        assertEquals(90, trainer.batchSizes.size());
        assertTrue(losses.toString(), losses.get(29) < losses.get(0) / 4);
        assertEquals(1.0, Training.accuracy(trainer, x, y, Trainer.Head.GLOBAL), 0);
    }

    @Test
    public void aLocalUpdateIsTheDeltaOfTheSharedWeightsWhichAreThenRestored() {
        SoftmaxTrainer trainer = new SoftmaxTrainer();
        float[] base = trainer.getWeights(Trainer.Part.SHARED);
        int[] y = labels(12);
        float[] delta = Training.localUpdate(trainer, windows(y, new Random(3)), y,
                new Hyperparameters(2, 4, 0.1f, 0.9f, 5), new Random(4));
        assertArrayEquals(base, trainer.getWeights(Trainer.Part.SHARED), 0f);
        assertEquals(base.length, delta.length);
        assertEquals(0f, delta[0], 0f);  // the unused dense kernel does not move
        assertTrue(Math.abs(delta[12]) + Math.abs(delta[6]) > 1e-4);
    }

    @Test
    public void personalLayersStartAsCopiesOfTheSharedTopLayers() {
        SoftmaxTrainer trainer = new SoftmaxTrainer();
        Training.resetPersonal(trainer);
        assertArrayEquals(trainer.getWeights(Trainer.Part.SHARED), trainer.getWeights(Trainer.Part.PERSONAL), 0f);
        int[] y = labels(9);
        float[][][] x = windows(y, new Random(5));
        assertArrayEquals(Training.predict(trainer, x, Trainer.Head.GLOBAL), Training.predict(trainer, x,
                Trainer.Head.PERSONAL));
    }

    @Test
    public void labelsOutsideTheClassesAreRefused() {
        SoftmaxTrainer trainer = new SoftmaxTrainer();
        try {
            Training.fit(trainer, Trainer.Part.SHARED, new float[1][4][2], new int[] {3}, 1, 1, 0.1f, 0f, 0f,
                    new Random(6));
            fail("trained on label 3 of 3 classes");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("[0, 2]"));
        }
    }

    @Test
    public void aManifestOfAnotherFormatOrWithOverlappingTensorsIsRefused() {
        try {
            Manifest.fromJson(SoftmaxTrainer.MANIFEST.replace("\"format\": 2", "\"format\": 1"));
            fail("read a format-1 manifest");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("format 1 is not supported any more"));
        }
        try {
            Manifest.fromJson(SoftmaxTrainer.MANIFEST.replace("\"offset\": 4}", "\"offset\": 3}"));
            fail("read overlapping tensors");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("expected 4"));
        }
        Manifest manifest = Manifest.fromJson(SoftmaxTrainer.MANIFEST);
        assertEquals(15, manifest.shared.size());
        assertEquals(3, manifest.numClasses());
    }

    @Test
    public void aFeaturesOrRegressionBundleIsReadButNotTrainedHere() {
        String features = SoftmaxTrainer.MANIFEST.replace(
                "{\"kind\": \"window\", \"shape\": [4, 2], \"rate_hz\": 8.0, \"channels\": [\"a\", \"b\"]}",
                "{\"kind\": \"features\", \"shape\": [2], \"names\": [\"age\", \"weight\"]}");
        Manifest manifest = Manifest.fromJson(features);
        assertEquals(Arrays.asList("age", "weight"), manifest.inputNames);
        assertEquals("adapter/kernel", manifest.personalCopies.get(0)[0]);
        assertEquals("dense/kernel", manifest.personalCopies.get(0)[1]);
        try {
            manifest.requireWindowClassifier();
            fail("accepted a features bundle");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("takes features, not windows"));
        }
        try {
            org.fedwear.bridge.windowing.WindowSpec.of(manifest);
            fail("cut windows for a features bundle");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("Python SDK"));
        }
        String regression = SoftmaxTrainer.MANIFEST.replace(
                "{\"kind\": \"classification\", \"name\": \"head\", \"label_names\": [\"x\", \"y\", \"z\"]}",
                "{\"kind\": \"regression\", \"name\": \"head\", \"target\": \"score\", \"units\": \"points\"}");
        try {
            Manifest.fromJson(regression).requireWindowClassifier();
            fail("accepted a regression bundle");
        } catch (BundleException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("head is regression"));
        }
    }
}
