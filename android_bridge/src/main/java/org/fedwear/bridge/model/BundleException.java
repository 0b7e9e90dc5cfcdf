package org.fedwear.bridge.model;

/** A bundle is missing, incomplete or does not match its manifest or the plan. */
public class BundleException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }
}
