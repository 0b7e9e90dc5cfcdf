package org.fedwear.bridge.crypto;

/** An update, a parameter set, a key or a payload cannot be used; the message says why. */
public class CodecException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public CodecException(String message) {
        super(message);
    }
}
