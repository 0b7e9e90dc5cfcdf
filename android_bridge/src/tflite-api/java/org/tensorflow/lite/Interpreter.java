package org.tensorflow.lite;

import java.io.File;
import java.util.Map;

/**
 * Compile-only declarations of the TensorFlow Lite 2.14 Java API that TfLiteTrainer calls, so that
 * {@code make bridge} can type-check src/tflite without the TensorFlow Lite library. Never packaged
 * or run: on Android the real {@code org.tensorflow:tensorflow-lite} provides this class.
 */
public final class Interpreter implements AutoCloseable {
    /** Interpreter options. */
    public static class Options {
        public Options setNumThreads(int numThreads) {
            throw new UnsupportedOperationException("compile-only declaration");
        }
    }

    public Interpreter(File modelFile, Options options) {
        throw new UnsupportedOperationException("compile-only declaration");
    }

    public String[] getSignatureKeys() {
        throw new UnsupportedOperationException("compile-only declaration");
    }

    public String[] getSignatureInputs(String signatureKey) {
        throw new UnsupportedOperationException("compile-only declaration");
    }

    public void runSignature(Map<String, Object> inputs, Map<String, Object> outputs, String signatureKey) {
        throw new UnsupportedOperationException("compile-only declaration");
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException("compile-only declaration");
    }
}
