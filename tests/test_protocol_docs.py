"""docs/ is the protocol: its tables must say what the code does, in both directions."""

import ast
import hashlib
import re
import struct

from cloud.api.responses import Plan, PlanCrypto, PlanRound
from sdk.crypto import errors, wire
from sdk.crypto.params import CryptoParams
from tests.conftest import ROOT

PROTOCOL = (ROOT / "docs" / "protocol.md").read_text()
ENCRYPTED = (ROOT / "docs" / "encrypted-updates.md").read_text()
# codes the HTTP layer (werkzeug) answers with, from its exception names
HTTP_LAYER = {("not_found", 404), ("method_not_allowed", 405), ("bad_request", 400),
              ("request_entity_too_large", 413)}


def table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells stripped of backticks) of the first table after `heading`."""
    section = text[text.index(heading):]
    lines = section[section.index("\n|"):].strip().splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if not set(cells[0]) <= {"-"}:
            rows.append(cells)
    return rows[1:]  # without the header row


def test_payload_refusal_table_is_the_codes_exception_classes_in_order():
    documented = [(code, int(status), cls) for code, status, cls, _ in table(PROTOCOL, "### Payload refusals")]
    in_code = [(c.code, c.status, c.__name__) for c in errors.payload_errors()]
    assert documented == in_code


def codes_in_service() -> set[tuple[str, int]]:
    """(code, status) of every ApiError, error_response and Unhealthy answer in the aggregation service."""
    found = set(HTTP_LAYER) | {(c.code, c.status) for c in errors.payload_errors()}
    sources = [p for p in (ROOT / "cloud").rglob("*.py") if p.name != "keyservice.py"]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id in ("ApiError", "error_response"):
                status, code = node.args[:2] if node.func.id == "ApiError" else node.args[1:3]
                if isinstance(status, ast.Attribute):  # error_response(app, err.status, err.code, ...)
                    continue
                assert isinstance(code, ast.Constant), f"{path}:{node.lineno}: use a literal error code"
                found.add((code.value, status.value))
            elif node.func.id == "Unhealthy":
                found.add((next(k.value.value for k in node.keywords if k.arg == "error"), 503))
    return found


def test_every_error_code_of_the_service_is_documented_and_every_documented_one_exists():
    general = {(code, int(status)) for code, status, *_ in table(PROTOCOL, "## Errors")}
    payload = {(code, int(status)) for code, status, *_ in table(PROTOCOL, "### Payload refusals")}
    assert general | payload == codes_in_service()


def test_header_and_fingerprint_tables_match_the_binary_layouts():
    for heading, layout, size in (("## Wire format, version 2", wire._HEADER, 98),
                                  ("**Parameter fingerprint**", struct.Struct(">4sHHBBBHIId"), 29)):
        rows = table(ENCRYPTED, heading)
        offsets, sizes = [int(r[0]) for r in rows], [int(r[1]) for r in rows]
        assert offsets == [sum(sizes[:i]) for i in range(len(sizes))] and sum(sizes) == layout.size == size
        widths = [struct.calcsize(">" + f) for f in re.findall(r"\d*[a-zA-Z]", layout.format[1:])]
        assert sizes == widths, heading
    assert CryptoParams().fingerprint_input().__len__() == 29


def test_worked_fingerprint_example_is_what_the_code_computes():
    example = re.search(r"input\s+([0-9a-f ]+)\n\s+sha256\s+([0-9a-f]{64})", ENCRYPTED)
    data = bytes.fromhex(example.group(1).replace(" ", ""))
    assert data == CryptoParams().fingerprint_input()
    assert example.group(2) == hashlib.sha256(data).hexdigest() == CryptoParams().fingerprint().hex()


def test_plan_table_names_every_field_of_the_plan_and_no_other():
    documented = {name for row in table(PROTOCOL, "`GET /v1/plan`") for name in re.split(r"`?, `?", row[0])}
    fields = set(Plan.model_fields) | {f"round.{f}" for f in PlanRound.model_fields} | {"crypto.public_key"}
    assert documented == fields
    crypto = {row[0] for row in table(ENCRYPTED, "## Crypto parameters")}
    assert crypto | {"public_key"} == set(PlanCrypto.model_fields) == set(CryptoParams.__dataclass_fields__) | {
        "public_key"}


def test_docs_are_linked():
    assert "docs/protocol.md" in (ROOT / "README.md").read_text()
    assert "(protocol.md)" in ENCRYPTED and "(encrypted-updates.md)" in PROTOCOL
