package org.fedwear.bridge.client;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * HTTP over {@link HttpURLConnection}: retries connection failures, 429 and 5xx with exponential
 * backoff and full jitter (sleep uniform in [0, min(maxBackoff, backoff * 2^attempt))); any other
 * 4xx is a {@link ServerException}, never retried.
 */
public class HttpTransport {
    /** Pauses between attempts; tests replace it to record the pauses. */
    public interface Sleeper {
        void sleep(long millis) throws InterruptedException;
    }

    private final String baseUrl;
    public int timeoutMs = 60_000;
    public int retries = 5;
    public double backoffS = 0.5;
    public double maxBackoffS = 30.0;
    public long maxResponseBytes = 256L << 20;
    public Random random = new Random();
    public Sleeper sleeper = Thread::sleep;

    public HttpTransport(String baseUrl) {
        this.baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
    }

    /** One attempt: the server's answer, or an IOException when it cannot be reached. */
    protected Response send(String method, String path, byte[] body, Map<String, String> headers) throws IOException {
        HttpURLConnection connection = (HttpURLConnection) new URL(baseUrl + path).openConnection();
        try {
            connection.setRequestMethod(method);
            connection.setConnectTimeout(timeoutMs);
            connection.setReadTimeout(timeoutMs);
            connection.setInstanceFollowRedirects(false);
            connection.setUseCaches(false);
            for (Map.Entry<String, String> header : headers.entrySet()) {
                connection.setRequestProperty(header.getKey(), header.getValue());
            }
            if (body != null) {
                connection.setDoOutput(true);
                connection.setFixedLengthStreamingMode(body.length);
                try (OutputStream out = connection.getOutputStream()) {
                    out.write(body);
                }
            }
            int status = connection.getResponseCode();
            Map<String, String> answerHeaders = new HashMap<>();
            for (Map.Entry<String, List<String>> header : connection.getHeaderFields().entrySet()) {
                if (header.getKey() != null && !header.getValue().isEmpty()) {
                    answerHeaders.put(header.getKey().toLowerCase(Locale.ROOT), header.getValue().get(0));
                }
            }
            InputStream stream = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
            return new Response(status, answerHeaders, stream == null ? new byte[0] : readAll(stream));
        } finally {
            connection.disconnect();
        }
    }

    private byte[] readAll(InputStream stream) throws IOException {
        try (InputStream in = stream) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buffer = new byte[1 << 16];
            long total = 0;
            for (int read; (read = in.read(buffer)) != -1; ) {
                total += read;
                if (total > maxResponseBytes) {
                    throw new IOException("response larger than " + maxResponseBytes + " bytes");
                }
                out.write(buffer, 0, read);
            }
            return out.toByteArray();
        }
    }

    /** A JSON request; see {@link #request(String, String, byte[], String, Map)}. */
    public Response requestJson(String method, String path, JSONObject json, Map<String, String> headers)
            throws IOException, ServerException {
        return request(method, path, json.toString().getBytes(StandardCharsets.UTF_8), "application/json", headers);
    }

    /**
     * Sends a request, retrying as the class says.
     *
     * @throws ServerException on a refusal (4xx but 429)
     * @throws TransportException when every attempt failed
     */
    public Response request(String method, String path, byte[] body, String contentType, Map<String, String> headers)
            throws IOException, ServerException {
        Map<String, String> all = new HashMap<>(headers);
        if (body != null) {
            all.put("Content-Type", contentType);
        }
        String last = "";
        for (int attempt = 0; attempt <= retries; attempt++) {
            try {
                Response response = send(method, path, body, all);
                if (response.status < 400) {
                    return response;
                }
                if (response.status != 429 && response.status < 500) {
                    throw serverError(response);
                }
                last = "HTTP " + response.status;
            } catch (IOException e) {
                last = e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            if (attempt < retries) {
                pause(attempt);
            }
        }
        throw new TransportException(method + " " + path + " failed after " + (retries + 1) + " attempts (" + last
                + ")");
    }

    private void pause(int attempt) throws TransportException {
        double cap = Math.min(maxBackoffS, backoffS * Math.pow(2, attempt));
        try {
            sleeper.sleep((long) (random.nextDouble() * cap * 1000));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new TransportException("interrupted while waiting to retry");
        }
    }

    private static ServerException serverError(Response response) {
        try {
            JSONObject body = response.json();
            return new ServerException(response.status, body.optString("error", "error"), body.optString("message", ""));
        } catch (JSONException e) {
            String text = new String(response.body, StandardCharsets.UTF_8);
            return new ServerException(response.status, "error", text.substring(0, Math.min(200, text.length())));
        }
    }
}
