package org.fedwear.bridge.client;

import java.io.IOException;

/** Computes a device's update for a plan; called only when no payload is stored for the round yet. */
public interface UpdateSource {
    LocalUpdate compute(Plan plan) throws IOException;
}
