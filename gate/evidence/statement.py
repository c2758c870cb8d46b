"""In-toto statements inside DSSE envelopes: what an attestation signature actually says.

Pure: the verified envelope's payload type and payload in, a parsed
:class:`Statement` (or a deny) out. Call these only on bytes whose signature
held; they decide *what* was signed, never *whether* it was.

Checks, in order (in-toto attestation framework, ``spec/v1/envelope.md`` and
``statement.md``; cosign ``pkg/cosign/verify.go`` ``VerifyImageAttestation``):

1. The DSSE ``payloadType`` is ``application/vnd.in-toto+json``
   (``payload-type-mismatch``): another payload type is another kind of claim
   and must never be read as a statement, even if the bytes parse.
2. The payload is a JSON object with ``_type`` ``https://in-toto.io/Statement/v1``
   or ``…/v0.1`` (slsa-github-generator still writes v0.1), a non-empty
   ``subject`` list of ``{name?, digest: {alg: hex}}``, a string
   ``predicateType`` and an object ``predicate`` (``malformed-statement``).
3. The artifact's digest is among the subjects (``subject-mismatch``): a
   genuine attestation of another image copied under this image's ``.att``
   tag or referrers is the attack (CVE-2022-36056 class).
4. The predicate type is the one the policy asks for, read from the SIGNED
   body (``predicate-type-mismatch``). The ``.att`` layer annotation
   ``predicateType`` and the referrer annotation
   ``dev.sigstore.bundle.predicateType`` are unsigned hints for discovery
   only; an attacker who can push can write any annotation.
5. The predicate validates against the JSON Schema the gate ships for its
   type (``attestations/schemas``), before any policy check reads it
   (``malformed-statement``). Unknown fields are allowed (forward compatible).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from gate.errors import VerificationError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_TYPES = frozenset({STATEMENT_V1, STATEMENT_V01})

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
COSIGN_SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"

#: Predicate type -> schema file under ``attestations/schemas`` (shipped as ``gate/data``).
SCHEMAS: Mapping[str, str] = MappingProxyType(
    {
        SLSA_PROVENANCE_V1: "slsa-provenance-v1.schema.json",
        SLSA_PROVENANCE_V02: "slsa-provenance-v0.2.schema.json",
        VSA_V1: "slsa-verification-summary-v1.schema.json",
        COSIGN_SIGN_V1: "cosign-sign-v1.schema.json",
    }
)
MAX_STATEMENT_BYTES = 4 * 1024 * 1024


class AttestationError(VerificationError):
    """An attestation that does not hold; ``reason`` says which check failed."""

    reason = "attestation-invalid"


@dataclass(frozen=True)
class Subject:
    name: str
    digest: Mapping[str, str]


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto statement (v1 or v0.1); ``predicate`` is the signed JSON object."""

    statement_type: str
    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]
    payload: bytes = field(repr=False)

    def has_subject(self, algorithm: str, hex_value: str) -> bool:
        want = hex_value.lower()
        return any(s.digest.get(algorithm, "").lower() == want for s in self.subjects)

    def subject_names(self) -> list[str]:
        return [f"{k}:{v}" for s in self.subjects for k, v in s.digest.items()]


def _malformed(message: str, **kw: Any) -> AttestationError:
    return AttestationError(message, reason="malformed-statement", **kw)


def parse_statement(payload_type: str | None, payload: bytes | None) -> Statement:
    """Steps 1-2: the signed payload as an in-toto statement."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise AttestationError(
            "the signed envelope does not carry an in-toto statement",
            reason="payload-type-mismatch",
            found=repr(payload_type),
            expected=IN_TOTO_PAYLOAD_TYPE,
            hint="DSSE binds the payload type into the signature (PAE); another type is "
            "another kind of claim and is never read as an attestation",
        )
    if payload is None:
        raise _malformed("the envelope has no payload")
    if len(payload) > MAX_STATEMENT_BYTES:
        raise _malformed("the statement is larger than 4 MiB")
    try:
        doc = json.loads(payload)
    except ValueError as e:
        raise _malformed(f"the signed statement is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise _malformed("the signed statement is not a JSON object")
    stype = doc.get("_type")
    if stype not in STATEMENT_TYPES:
        raise _malformed(
            "the signed payload is not an in-toto statement",
            found=repr(stype),
            expected=" or ".join(sorted(STATEMENT_TYPES)),
        )
    raw_subjects = doc.get("subject")
    if not isinstance(raw_subjects, list) or not raw_subjects:
        raise _malformed("the statement's subject is not a non-empty list")
    subjects: list[Subject] = []
    for i, s in enumerate(raw_subjects):
        digests = s.get("digest") if isinstance(s, dict) else None
        if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in digests.items()
        ):
            raise _malformed(f"subject[{i}].digest is not a map of algorithm to hex string")
        name = s.get("name", "")
        if not isinstance(name, str):
            raise _malformed(f"subject[{i}].name is not a string")
        subjects.append(Subject(name, MappingProxyType(dict(digests))))
    ptype = doc.get("predicateType")
    if not isinstance(ptype, str) or not ptype:
        raise _malformed("the statement has no predicateType")
    predicate = doc.get("predicate", {})
    if predicate is None:
        predicate = {}
    if not isinstance(predicate, dict):
        raise _malformed("the statement's predicate is not a JSON object")
    return Statement(stype, tuple(subjects), ptype, predicate, payload)


def check_subject(statement: Statement, digest: str) -> None:
    """Step 3: ``digest`` (``alg:hex``) is among the subjects."""
    algorithm, _, hex_value = digest.partition(":")
    if not hex_value:
        raise TypeError(f"not an algorithm:hex digest: {digest!r}")
    if statement.has_subject(algorithm, hex_value):
        return
    raise AttestationError(
        "the signed statement is about another artifact",
        reason="subject-mismatch",
        found=", ".join(statement.subject_names()) or "no subject digest",
        expected=digest,
        hint="an attestation copied from another image or file",
    )


def check_predicate_type(statement: Statement, expected: str) -> None:
    """Step 4: the SIGNED predicate type is the one asked for (annotations are hints)."""
    if statement.predicate_type != expected:
        raise AttestationError(
            "the signed statement has another predicate type",
            reason="predicate-type-mismatch",
            found=repr(statement.predicate_type),
            expected=repr(expected),
            hint="the predicateType annotation is unsigned; only the statement body counts",
        )


@cache
def _schema(name: str) -> Any:
    ref = resources.files("gate").joinpath("data", "attestations", "schemas", name)
    return json.loads(ref.read_text(encoding="utf-8"))


def schema_for(predicate_type: str) -> Any | None:
    """The JSON Schema the gate ships for ``predicate_type`` (``None``: not one we read)."""
    name = SCHEMAS.get(predicate_type)
    return None if name is None else _schema(name)


def validate_predicate(statement: Statement) -> None:
    """Step 5: the predicate matches its schema, if the gate ships one for its type."""
    schema = schema_for(statement.predicate_type)
    if schema is None:
        return
    import jsonschema  # type: ignore[import-untyped]  # no stubs shipped

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(statement.predicate)), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "predicate" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path
        )
        raise _malformed(
            f"the {statement.predicate_type} predicate does not match its schema",
            found=f"{where}: {first.message}",
            expected=f"attestations/schemas/{SCHEMAS[statement.predicate_type]}",
        )


def verify_statement(
    payload_type: str | None,
    payload: bytes | None,
    digest: str,
    predicate_type: str,
) -> Statement:
    """Steps 1-5 for a verified envelope: the statement, or a deny with its reason."""
    statement = parse_statement(payload_type, payload)
    check_predicate_type(statement, predicate_type)
    check_subject(statement, digest)
    validate_predicate(statement)
    return statement


__all__ = [
    "COSIGN_SIGN_V1",
    "IN_TOTO_PAYLOAD_TYPE",
    "SLSA_PROVENANCE_V02",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPES",
    "VSA_V1",
    "AttestationError",
    "Statement",
    "Subject",
    "check_predicate_type",
    "check_subject",
    "parse_statement",
    "validate_predicate",
    "verify_statement",
]
