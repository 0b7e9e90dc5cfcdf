package org.fedwear.bridge.client;

/** The server refused a request (4xx other than 429); {@code status} and {@code code} say which. */
public class ServerException extends Exception {
    private static final long serialVersionUID = 1L;
    public final int status;
    public final String code;
    public final String detail;

    public ServerException(int status, String code, String detail) {
        super(status + " " + code + ": " + detail);
        this.status = status;
        this.code = code;
        this.detail = detail;
    }
}
