package org.fedwear.bridge.client;

/** What local training produced: the delta of the shared weights, its window count, and local accuracy. */
public final class LocalUpdate {
    public final float[] delta;
    public final int windows;
    /** Accuracy of the global model on the local windows before training, or null. */
    public final Double accuracy;

    public LocalUpdate(float[] delta, int windows, Double accuracy) {
        this.delta = delta;
        this.windows = windows;
        this.accuracy = accuracy;
    }
}
