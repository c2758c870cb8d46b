"""gate.evidence.bundle: keyless through sigstore-python, key bundles, statement checks."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from gate.errors import VerificationError
from gate.evidence.bundle import (
    Artifact,
    check_statement,
    check_subject,
    verify_key_bundle,
    verify_keyless_bundle,
)
from gate.policy.model import KeylessIdentity
from gate.signing import IN_TOTO_PAYLOAD_TYPE, Signer, generate_key_pair, sign_envelope
from gate.sources.trustroot import load_trust_root
from testkit import cosign
from testkit.attestations import statement_bytes
from testkit.sigstore_authority import FORGERIES, Authority, GitHubClaims

ISSUER = "https://token.actions.githubusercontent.com"
CLAIMS = GitHubClaims.for_workflow()
DIGEST = "sha256:" + "ab" * 32
STATEMENT = statement_bytes(cosign.sign_statement_v3(DIGEST))
EXPECTED = KeylessIdentity.model_validate({"issuer": ISSUER, "subject": CLAIMS.identity})


def _raw(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


def _dsse(authority: Authority, payload: bytes = STATEMENT, **kw: Any) -> dict[str, Any]:
    return authority.sign_dsse(
        payload, identity=CLAIMS.identity, issuer=ISSUER, github=CLAIMS, **kw
    )


def test_keyless_dsse(sigstore_authority: Authority) -> None:
    root = load_trust_root(sigstore_authority.trusted_root_path)
    result = verify_keyless_bundle(_raw(_dsse(sigstore_authority)), root, EXPECTED)
    assert result.content == "dsse-envelope"
    check_statement(result.payload_type, result.payload, DIGEST)
    assert result.signer_id == f"keyless:{ISSUER}:{CLAIMS.identity}"


def test_keyless_message(sigstore_authority: Authority) -> None:
    root = load_trust_root(sigstore_authority.trusted_root_path)
    data = b"artifact bytes"
    bundle = sigstore_authority.sign_blob(data, identity=CLAIMS.identity, issuer=ISSUER)
    verify_keyless_bundle(_raw(bundle), root, EXPECTED, Artifact.of(data))
    verify_keyless_bundle(_raw(bundle), root, EXPECTED, Artifact(Artifact.of(data).sha256))
    with pytest.raises(VerificationError) as e:
        verify_keyless_bundle(_raw(bundle), root, EXPECTED, Artifact.of(b"other bytes"))
    assert e.value.reason == "bad-signature"


FORGERY_REASONS = {
    "expired-certificate": "certificate-expired",
    "integrated-outside-validity": "certificate-expired",
    "set-signed-by-other-key": "tlog-invalid",
    "checkpoint-signed-by-other-key": "tlog-invalid",
    "inclusion-proof-mismatch": "tlog-invalid",
    "sct-untrusted-log": "sct-invalid",
    "sct-over-other-data": "sct-invalid",
    "other-identity": "identity-mismatch",
    "other-issuer": "issuer-mismatch",
    "untrusted-ca": "untrusted-signer",
}


def test_every_authority_forgery_has_a_reason() -> None:
    assert set(FORGERY_REASONS) == set(FORGERIES)


@pytest.mark.parametrize("forgery", sorted(FORGERY_REASONS))
def test_keyless_forgeries(sigstore_authority: Authority, forgery: str) -> None:
    root = load_trust_root(sigstore_authority.trusted_root_path)
    bundle = _dsse(sigstore_authority, forgery=FORGERIES[forgery])
    with pytest.raises(VerificationError) as e:
        verify_keyless_bundle(_raw(bundle), root, EXPECTED)
    assert e.value.reason == FORGERY_REASONS[forgery]


def test_statement_checks() -> None:
    other = statement_bytes(cosign.sign_statement_v3("sha256:" + "cd" * 32))
    with pytest.raises(VerificationError) as e:
        check_statement(IN_TOTO_PAYLOAD_TYPE, other, DIGEST)
    assert e.value.reason == "digest-mismatch"
    provenance = statement_bytes(
        cosign.attestation_statement("r/app", DIGEST, "https://slsa.dev/provenance/v1", {})
    )
    with pytest.raises(VerificationError, match="predicate type"):
        check_statement(IN_TOTO_PAYLOAD_TYPE, provenance, DIGEST)
    check_subject(IN_TOTO_PAYLOAD_TYPE, provenance, bytes.fromhex("ab" * 32))
    with pytest.raises(VerificationError, match="not an in-toto statement"):
        check_statement("application/json", STATEMENT, DIGEST)
    with pytest.raises(VerificationError):
        check_statement(IN_TOTO_PAYLOAD_TYPE, b'{"_type": "x", "subject": []}', DIGEST)


def test_key_bundle_dsse() -> None:
    pair = generate_key_pair()
    signer = Signer(pair.private_key)
    bundle = cosign.key_bundle_dsse(sign_envelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, signer), signer)
    result = verify_key_bundle(_raw(bundle), pair.public_key)
    check_statement(result.payload_type, result.payload, DIGEST)
    # Another key: the hint says so.
    with pytest.raises(VerificationError) as e:
        verify_key_bundle(_raw(bundle), generate_key_pair().public_key)
    assert e.value.reason == "untrusted-signer"
    # Without a hint, another key is still refused (on the signature).
    del bundle["verificationMaterial"]["publicKey"]["hint"]
    with pytest.raises(VerificationError):
        verify_key_bundle(_raw(bundle), generate_key_pair().public_key)
    # The payload changed after signing.
    tampered = json.loads(_raw(bundle))
    tampered["dsseEnvelope"]["payload"] = base64.b64encode(STATEMENT + b" ").decode()
    with pytest.raises(VerificationError) as e:
        verify_key_bundle(_raw(tampered), pair.public_key)
    assert e.value.reason == "bad-signature"


def test_key_bundle_message() -> None:
    pair = generate_key_pair()
    signer = Signer(pair.private_key)
    data = b"payload"
    bundle = cosign.key_bundle_message(data, signer.sign(data), signer)
    verify_key_bundle(_raw(bundle), pair.public_key, Artifact.of(data))
    with pytest.raises(VerificationError) as e:
        verify_key_bundle(_raw(bundle), pair.public_key, Artifact.of(b"other"))
    assert e.value.reason == "digest-mismatch"


def test_key_and_keyless_bundles_do_not_cross(sigstore_authority: Authority) -> None:
    root = load_trust_root(sigstore_authority.trusted_root_path)
    pair = generate_key_pair()
    signer = Signer(pair.private_key)
    key_bundle = cosign.key_bundle_dsse(
        sign_envelope(STATEMENT, IN_TOTO_PAYLOAD_TYPE, signer), signer
    )
    with pytest.raises(VerificationError) as e:
        verify_keyless_bundle(_raw(key_bundle), root, EXPECTED)
    assert e.value.reason == "untrusted-signer"
    with pytest.raises(VerificationError) as e:
        verify_key_bundle(_raw(_dsse(sigstore_authority)), pair.public_key)
    assert e.value.reason == "untrusted-signer"


@pytest.mark.parametrize(
    "data", [b"", b"[]", b"{", b'{"mediaType": "application/json"}', b"x" * (1024 * 1024 + 1)]
)
def test_malformed_bundles(sigstore_authority: Authority, data: bytes) -> None:
    root = load_trust_root(sigstore_authority.trusted_root_path)
    with pytest.raises(VerificationError):
        verify_keyless_bundle(data, root, EXPECTED)
    with pytest.raises(VerificationError):
        verify_key_bundle(data, generate_key_pair().public_key)
