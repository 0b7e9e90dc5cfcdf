"""HTTP for devices (standard library only): JSON and binary calls, retries with backoff and jitter."""

from __future__ import annotations

import json
import random
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field


class TransportError(RuntimeError):
    """The server could not be reached after every retry."""


class ServerError(RuntimeError):
    """The server answered with an error; `status` and `code` say which."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class HttpTransport:
    """Retries connection failures, 429 and 5xx with exponential backoff and full jitter.

    ``ssl_context``: how https URLs are verified (default: the system's trusted certificates); e.g. one that
    trusts only a consortium's own certificate authority (``ssl.create_default_context(cafile=...)``), and
    presents a client certificate where the service asks for one (``load_cert_chain``). A certificate that
    does not verify is refused at once, never retried.
    """

    base_url: str
    timeout: float = 60.0
    retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    ssl_context: ssl.SSLContext | None = None

    def send(self, method: str, path: str, body: bytes | None, headers: dict) -> Response:
        """One attempt: the server's answer, or an OSError when it cannot be reached."""
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.ssl_context) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as err:
            return Response(err.code, dict(err.headers), err.read())
        except urllib.error.URLError as err:
            if isinstance(err.reason, ssl.SSLCertVerificationError):
                raise TransportError(f"{self.base_url}: the server's certificate does not verify "
                                     f"({err.reason.verify_message}); give an ssl_context that trusts its "
                                     "certificate authority") from err
            raise

    def request(self, method: str, path: str, *, json_body=None, data: bytes | None = None,
                headers: dict | None = None) -> Response:
        headers = dict(headers or {})
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        last = ""
        for attempt in range(self.retries + 1):
            try:
                response = self.send(method, path, body, headers)
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status < 400 or response.status == 304:
                    return response
                if response.status != 429 and response.status < 500:
                    raise _server_error(response)
                last = f"HTTP {response.status}"
            if attempt < self.retries:
                time.sleep(self.rng.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt)))
        raise TransportError(f"{method} {path} failed after {self.retries + 1} attempts ({last})")


def _server_error(response: Response) -> ServerError:
    try:
        body = response.json()
        return ServerError(response.status, body.get("error", "error"), body.get("message", ""))
    except (ValueError, AttributeError):
        return ServerError(response.status, "error", response.body[:200].decode(errors="replace"))
