package org.fedwear.bridge.client;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import com.sun.net.httpserver.HttpServer;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** The retry rule against a real HTTP server on loopback that answers a scripted series of statuses. */
public class HttpTransportTest {
    private HttpServer server;
    private final List<Integer> script = Collections.synchronizedList(new ArrayList<>());
    private final AtomicInteger requests = new AtomicInteger();
    private final List<Long> pauses = new ArrayList<>();

    @Before
    public void start() throws Exception {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", exchange -> {
            requests.incrementAndGet();
            int status = script.isEmpty() ? 200 : script.remove(0);
            byte[] body = (status >= 400 ? "{\"error\": \"code_" + status + "\", \"message\": \"scripted\"}"
                    : "{\"ok\": true}").getBytes(StandardCharsets.UTF_8);
            exchange.sendResponseHeaders(status, body.length);
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
    }

    @After
    public void stop() {
        server.stop(0);
    }

    private HttpTransport transport(String url) {
        HttpTransport transport = new HttpTransport(url);
        transport.retries = 4;
        transport.backoffS = 0.1;
        transport.maxBackoffS = 0.3;
        transport.sleeper = pauses::add;
        return transport;
    }

    private String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @Test
    public void serverErrorsAndTooManyRequestsAreRetriedWithCappedFullJitter() throws Exception {
        script.addAll(List.of(503, 429, 500, 502));
        Response response = transport(url()).request("PUT", "/x", new byte[] {1, 2}, "application/octet-stream",
                Collections.emptyMap());
        assertEquals(200, response.status);
        assertEquals(5, requests.get());
        assertEquals(4, pauses.size());
        double[] caps = {100, 200, 300, 300};
        for (int i = 0; i < pauses.size(); i++) {
            assertTrue("pause " + i + " = " + pauses.get(i), pauses.get(i) >= 0 && pauses.get(i) <= caps[i]);
        }
    }

    @Test
    public void aRefusalIsReportedWithItsCodeAndNeverRetried() throws Exception {
        script.add(409);
        try {
            transport(url()).request("GET", "/x", null, null, Collections.emptyMap());
            fail("a 409 was not reported");
        } catch (ServerException e) {
            assertEquals(409, e.status);
            assertEquals("code_409", e.code);
            assertEquals("scripted", e.detail);
        }
        assertEquals(1, requests.get());
        assertTrue(pauses.isEmpty());
    }

    @Test
    public void anUnreachableServerFailsAfterEveryRetry() throws Exception {
        int port;
        try (ServerSocket free = new ServerSocket(0)) {
            port = free.getLocalPort();
        }
        try {
            transport("http://127.0.0.1:" + port).request("GET", "/x", null, null, Collections.emptyMap());
            fail("reached a closed port");
        } catch (TransportException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("after 5 attempts"));
        }
        assertEquals(4, pauses.size());
    }

    @Test
    public void aServerThatKeepsFailingIsGivenUpOn() throws Exception {
        script.addAll(List.of(503, 503, 503, 503, 503, 503));
        try {
            transport(url()).request("GET", "/x", null, null, Collections.emptyMap());
            fail("gave up too early or never");
        } catch (TransportException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("HTTP 503"));
        }
        assertEquals(5, requests.get());
    }
}
