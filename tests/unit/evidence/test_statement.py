"""In-toto statements: payload type, statement type, subject, SIGNED predicate type, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.evidence.statement import (
    SCHEMAS,
    AttestationError,
    parse_statement,
    schema_for,
    validate_predicate,
    verify_statement,
)
from testkit import attestations as a

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
PT = "application/vnd.in-toto+json"
REPO = Path(__file__).resolve().parents[3]


def _stmt(**kw: Any) -> dict[str, Any]:
    return a.provenance_statement([a.subject("img", DIGEST)], **kw)


def _reason(payload_type: str | None, payload: bytes | None, **kw: Any) -> str:
    with pytest.raises(AttestationError) as e:
        verify_statement(
            payload_type,
            payload,
            kw.get("digest", DIGEST),
            kw.get("predicate_type", a.SLSA_PROVENANCE_V1),
        )
    return e.value.reason


def test_v1_statement_verifies() -> None:
    st = verify_statement(PT, a.statement_bytes(_stmt()), DIGEST, a.SLSA_PROVENANCE_V1)
    assert st.statement_type == a.STATEMENT_V1
    assert st.predicate["runDetails"]["builder"]["id"] == a.GITHUB_HOSTED_RUNNER


def test_v01_statement_with_v02_predicate_verifies() -> None:
    payload = a.statement_bytes(_stmt(slsa_version="v0.2"))
    st = verify_statement(PT, payload, DIGEST, a.SLSA_PROVENANCE_V02)
    assert st.statement_type == a.STATEMENT_V01


def test_subject_digest_case_insensitive() -> None:
    stmt = a.provenance_statement([a.subject("img", "sha256:" + "AB" * 32)])
    verify_statement(PT, a.statement_bytes(stmt), DIGEST, a.SLSA_PROVENANCE_V1)


def test_payload_type_mismatch() -> None:
    # The same bytes under another DSSE payload type are another claim (PAE binds the type).
    assert _reason("application/json", a.statement_bytes(_stmt())) == "payload-type-mismatch"
    assert _reason(None, a.statement_bytes(_stmt())) == "payload-type-mismatch"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        json.dumps({**_stmt(), "_type": "https://in-toto.io/Statement/v9"}).encode(),
        json.dumps({**_stmt(), "subject": []}).encode(),
        json.dumps({**_stmt(), "subject": [{"name": "x", "digest": "sha256:ab"}]}).encode(),
        json.dumps({**_stmt(), "subject": [{"name": 3, "digest": {"sha256": "ab"}}]}).encode(),
        json.dumps({**_stmt(), "predicateType": 7}).encode(),
        json.dumps({**_stmt(), "predicate": [1]}).encode(),
    ],
    ids=[
        "not-json",
        "array",
        "statement-type",
        "no-subject",
        "digest-string",
        "name-int",
        "predicate-type-int",
        "predicate-list",
    ],
)
def test_malformed_statement(payload: bytes) -> None:
    assert _reason(PT, payload) == "malformed-statement"


def test_subject_mismatch() -> None:
    assert _reason(PT, a.statement_bytes(_stmt()), digest=OTHER) == "subject-mismatch"


def test_predicate_type_from_signed_body() -> None:
    # The caller asks for v0.2 while the signed body says v1: the body decides.
    payload = a.statement_bytes(_stmt())
    assert _reason(PT, payload, predicate_type=a.SLSA_PROVENANCE_V02) == "predicate-type-mismatch"


def test_predicate_failing_schema_is_malformed() -> None:
    stmt = _stmt()
    stmt["predicate"]["runDetails"]["builder"]["id"] = 42
    assert _reason(PT, a.statement_bytes(stmt)) == "malformed-statement"
    stmt = _stmt()
    del stmt["predicate"]["buildDefinition"]
    with pytest.raises(AttestationError) as e:
        validate_predicate(parse_statement(PT, a.statement_bytes(stmt)))
    assert e.value.reason == "malformed-statement"
    assert "buildDefinition" in (e.value.found or "")


def test_unknown_predicate_fields_ignored() -> None:
    stmt = _stmt()
    stmt["predicate"]["futureField"] = {"anything": [1, 2]}
    stmt["predicate"]["runDetails"]["builder"]["extra"] = True
    verify_statement(PT, a.statement_bytes(stmt), DIGEST, a.SLSA_PROVENANCE_V1)


def test_vsa_schema() -> None:
    good = a.vsa_statement([a.subject("img", DIGEST)], resource_uri="img@" + DIGEST)
    verify_statement(PT, a.statement_bytes(good), DIGEST, a.VSA_V1)
    bad = a.vsa_statement([a.subject("img", DIGEST)], resource_uri="img@" + DIGEST)
    bad["predicate"]["verificationResult"] = "MAYBE"
    assert _reason(PT, a.statement_bytes(bad), predicate_type=a.VSA_V1) == "malformed-statement"


def test_unknown_predicate_type_has_no_schema() -> None:
    assert schema_for("https://example.com/custom/v1") is None


@pytest.mark.parametrize(
    "example", sorted((REPO / "attestations" / "examples").glob("*.json")), ids=lambda p: p.name
)
def test_examples_validate(example: Path) -> None:
    doc = json.loads(example.read_text())
    st = parse_statement(PT, json.dumps(doc).encode())
    assert st.predicate_type in SCHEMAS
    validate_predicate(st)


def test_schemas_ship_in_the_package() -> None:
    for name in SCHEMAS.values():
        assert (REPO / "gate" / "data" / "attestations" / "schemas" / name).is_file()
