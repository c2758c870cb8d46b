"""Our own path for bundles sigstore-python refuses: no tlog + RFC 3161 (private instance)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from gate.errors import VerificationError
from gate.evidence.attestations import Material, PolicySigner, verify_envelope
from gate.policy.model import KeylessIdentity
from gate.sources.trustroot import load_trust_root
from testkit import attestations as a
from testkit.sigstore_authority import Authority, GitHubClaims

CLAIMS = GitHubClaims.for_workflow()
SIGNER = PolicySigner(
    "gh",
    keyless=KeylessIdentity.model_validate(
        {"issuer": a.GITHUB_ACTIONS_ISSUER, "subject": "https://github.com/acme/**"}
    ),
)


def _private(authority: Authority, **kw: Any) -> bytes:
    stmt = a.provenance_statement([a.subject("x", "sha256:" + "ab" * 32)])
    bundle = authority.sign_dsse(
        a.statement_bytes(stmt),
        identity=CLAIMS.identity,
        issuer=a.GITHUB_ACTIONS_ISSUER,
        github=CLAIMS,
        timestamp=True,
        **kw,
    )
    bundle["verificationMaterial"].pop("tlogEntries")  # as GitHub's private instance
    return json.dumps(bundle).encode()


def _verify(authority: Authority, data: bytes) -> None:
    root = load_trust_root(authority.trusted_root_path)
    verify_envelope(Material("bundle", "b", data), SIGNER, lambda: root, dt.datetime.now(dt.UTC))


def test_timestamp_only_bundle_verifies(sigstore_tsa_authority: Authority) -> None:
    _verify(sigstore_tsa_authority, _private(sigstore_tsa_authority))


def test_timestamp_outside_certificate_validity(sigstore_tsa_authority: Authority) -> None:
    from testkit.sigstore_authority import TSA_FORGERIES

    data = _private(sigstore_tsa_authority, forgery=TSA_FORGERIES["timestamp-outside-validity"])
    with pytest.raises(VerificationError) as e:
        _verify(sigstore_tsa_authority, data)
    assert e.value.reason == "certificate-expired"


def test_root_without_tsa_is_a_precise_deny(
    sigstore_tsa_authority: Authority, sigstore_authority: Authority
) -> None:
    with pytest.raises(VerificationError) as e:
        _verify(sigstore_authority, _private(sigstore_tsa_authority))
    assert e.value.reason == "tlog-invalid"
    assert "RFC 3161" in e.value.message


def test_tampered_statement(sigstore_tsa_authority: Authority) -> None:
    doc = json.loads(_private(sigstore_tsa_authority))
    import base64

    doc["dsseEnvelope"]["payload"] = base64.b64encode(b'{"_type":"x"}').decode()
    with pytest.raises(VerificationError) as e:
        _verify(sigstore_tsa_authority, json.dumps(doc).encode())
    assert e.value.reason == "bad-signature"
