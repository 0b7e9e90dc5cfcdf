"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.schemathesis_hooks): bodies also sent chunked and deeply nested.

Of every three generated requests with a JSON or binary body, one goes as
generated, one is sent with chunked transfer encoding (no Content-Length), and
one replaces a JSON body with JSON nested deeper than any parser's stack, sent
chunked as well.
"""

from __future__ import annotations

import itertools
import json

import schemathesis
from schemathesis.core import NotSet

NESTING = 5000  # 10 KB of brackets: under the JSON size limit, far over the parser's recursion limit
_calls = itertools.count()


class Chunked:
    """A body requests sends chunked: iterable, with a length of 0 (schemathesis records len(body))."""

    def __init__(self, data: bytes, size: int = 1000) -> None:
        self.parts = [data[start:start + size] for start in range(0, len(data), size)]

    def __iter__(self):
        return iter(self.parts)

    def __len__(self) -> int:
        return 0  # requests then omits Content-Length and sends Transfer-Encoding: chunked


def _encoded(case) -> bytes | None:
    if isinstance(case.body, NotSet):
        return None
    if case.media_type == "application/json":
        try:
            return json.dumps(case.body).encode()
        except TypeError:  # a generated body that is not JSON (bytes): sent as generated
            return None
    if case.media_type == "application/octet-stream" and isinstance(case.body, (bytes, str)):
        return case.body if isinstance(case.body, bytes) else case.body.encode()
    return None


@schemathesis.hook
def before_call(context, case, kwargs):
    body = _encoded(case)
    if body is None:
        return
    variant = next(_calls) % 3
    if variant == 2 and case.media_type == "application/json":
        body = b'{"nested": ' + b"[" * NESTING + b"]" * NESTING + b"}"
    if variant:
        kwargs["data"] = Chunked(body)
