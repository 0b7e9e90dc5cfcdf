package org.fedwear.bridge.client;

import java.io.IOException;

/** The server could not be reached, or kept failing, after every retry. */
public class TransportException extends IOException {
    private static final long serialVersionUID = 1L;

    public TransportException(String message) {
        super(message);
    }
}
