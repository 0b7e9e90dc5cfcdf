package org.fedwear.bridge.crypto;

/** The randomiser pool has fewer unused randomisers than an encryption needs. */
public class PoolExhaustedException extends CodecException {
    private static final long serialVersionUID = 1L;

    public PoolExhaustedException(String message) {
        super(message);
    }
}
