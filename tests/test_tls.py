"""TLS between parties: the device transport trusts a consortium's own certificate authority when told to,
refuses a certificate it cannot verify at once (no retries), and presents a client certificate."""

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sdk.transport import HttpTransport, TransportError


def issue(name, issuer=None, ca=False, usage=None):
    """(certificate, key): self-signed when no issuer (certificate, key) is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def write(path, cert, key):
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return path.with_suffix(".crt"), path.with_suffix(".key")


@pytest.fixture
def https_server(tmp_path):
    """A loopback HTTPS server with a certificate of the consortium's CA; it asks for client certificates."""
    ca = issue("consortium CA", ca=True)
    ca_file, _ = write(tmp_path / "ca", *ca)
    server_cert, server_key = write(tmp_path / "server", *issue("aggregator", ca, usage=ExtendedKeyUsageOID.SERVER_AUTH))
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            peer = self.connection.getpeercert()
            seen.append(dict(x[0] for x in peer["subject"])["commonName"] if peer else None)
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_OPTIONAL
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca, ca_file, seen
    server.shutdown()


def test_transport_trusts_the_consortium_ca_and_refuses_other_certificates_at_once(https_server, tmp_path):
    url, ca, ca_file, seen = https_server
    started = time.perf_counter()
    with pytest.raises(TransportError, match="certificate does not verify"):
        HttpTransport(url, retries=5, backoff_s=1.0).request("GET", "/v1/plan")
    assert time.perf_counter() - started < 1.0  # refused, not retried with backoff
    context = ssl.create_default_context(cafile=str(ca_file))
    assert HttpTransport(url, ssl_context=context).request("GET", "/v1/plan").json() == {"ok": True}
    assert seen[-1] is None
    client_cert, client_key = write(tmp_path / "hospital", *issue("hospital-a", ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH))
    context.load_cert_chain(client_cert, client_key)
    HttpTransport(url, ssl_context=context).request("GET", "/v1/plan")
    assert seen[-1] == "hospital-a"
