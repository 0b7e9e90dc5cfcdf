package org.fedwear.bridge.crypto;

/** Uniform draws in [0, 1) for stochastic rounding. */
public interface UniformSource {
    double next();
}
