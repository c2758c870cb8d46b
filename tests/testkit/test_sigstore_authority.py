"""The private Sigstore authority mints what the real sigstore-python verifier accepts, and
each forgery is rejected by it for the reason the forgery names."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Literal

import pytest
import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.errors import CertValidationError, VerificationError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier, policy

from testkit.plugin_sigstore import GITHUB_ISSUER, to_bundle, verifier_for
from testkit.sigstore_authority import (
    FORGERIES,
    TRUSTED_ROOT_MEDIA_TYPE,
    TSA_FORGERIES,
    Authority,
    GitHubClaims,
    LegacyKeylessSignature,
    pae,
)
from testkit.sigstore_certs import FULCIO_OID_PREFIX
from testkit.sigstore_log import MerkleTree, verify_inclusion

EMAIL = "release@acme.example"
GOOGLE = "https://accounts.google.com"
STATEMENT = json.dumps(
    {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {},
    }
).encode()


def _oid(arc: int) -> x509.ObjectIdentifier:
    return x509.ObjectIdentifier(f"{FULCIO_OID_PREFIX}.{arc}")


def _ext(cert: x509.Certificate, arc: int) -> bytes:
    value = cert.extensions.get_extension_for_oid(_oid(arc)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _leaf(bundle: dict[str, Any]) -> x509.Certificate:
    raw = bundle["verificationMaterial"]["certificate"]["rawBytes"]
    return x509.load_der_x509_certificate(base64.b64decode(raw))


# -- the trust root ---------------------------------------------------------------------


def test_trusted_root_is_accepted_by_sigstore(sigstore_authority: Authority) -> None:
    document = json.loads(sigstore_authority.trusted_root_path.read_text())
    assert document["mediaType"] == TRUSTED_ROOT_MEDIA_TYPE
    root = TrustedRoot.from_file(str(sigstore_authority.trusted_root_path))
    assert root.get_fulcio_certs() == [
        sigstore_authority.intermediate_certificate,
        sigstore_authority.root_certificate,
    ]
    logs = {base64.b64decode(t["logId"]["keyId"]) for t in document["tlogs"]}
    assert logs == {sigstore_authority.rekor_log_id}
    cts = {base64.b64decode(t["logId"]["keyId"]) for t in document["ctlogs"]}
    assert cts == {sigstore_authority.ct_log_id}


# -- bundles that verify ----------------------------------------------------------------


def test_blob_bundle_verifies(
    sigstore_authority: Authority, sigstore_verifier: Verifier, github_claims: GitHubClaims
) -> None:
    bundle = sigstore_authority.sign_blob(
        b"artifact", identity=github_claims.identity, issuer=GITHUB_ISSUER, github=github_claims
    )
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.1"}
    assert int(entry["logIndex"]) > 0
    assert int(entry["inclusionProof"]["treeSize"]) > 1
    assert entry["inclusionProof"]["hashes"]
    sigstore_verifier.verify_artifact(
        b"artifact",
        to_bundle(bundle),
        policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER),
    )
    with pytest.raises(VerificationError, match="digest mismatch"):
        sigstore_verifier.verify_artifact(
            b"other",
            to_bundle(bundle),
            policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER),
        )


def test_email_identity_and_p384_key(
    sigstore_authority: Authority, sigstore_verifier: Verifier
) -> None:
    bundle = sigstore_authority.sign_blob(b"x", identity=EMAIL, issuer=GOOGLE, key_type="p384")
    leaf = _leaf(bundle)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == [EMAIL]
    assert _ec_key(leaf).curve.name == "secp384r1"
    sigstore_verifier.verify_artifact(
        b"x", to_bundle(bundle), policy.Identity(identity=EMAIL, issuer=GOOGLE)
    )


def test_dsse_bundle_verifies(
    sigstore_authority: Authority, sigstore_verifier: Verifier, github_claims: GitHubClaims
) -> None:
    bundle = sigstore_authority.sign_dsse(
        STATEMENT, identity=github_claims.identity, issuer=GITHUB_ISSUER, github=github_claims
    )
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"}
    payload_type, payload = sigstore_verifier.verify_dsse(
        to_bundle(bundle), policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER)
    )
    assert (payload_type, payload) == ("application/vnd.in-toto+json", STATEMENT)


def test_github_workflow_policies(
    sigstore_authority: Authority, sigstore_verifier: Verifier
) -> None:
    claims = GitHubClaims.for_workflow(
        "acme/app",
        ".github/workflows/ci.yml",
        "refs/heads/main",
        sha="c" * 40,
        signer_workflow="slsa-framework/slsa-github-generator/.github/workflows/"
        "generator_generic_slsa3.yml@refs/tags/v2.1.0",
        signer_sha="d" * 40,
    )
    bundle = sigstore_authority.sign_dsse(
        STATEMENT, identity=claims.identity, issuer=GITHUB_ISSUER, github=claims
    )
    every_claim = policy.AllOf(
        [
            policy.Identity(identity=claims.identity, issuer=GITHUB_ISSUER),
            policy.OIDCIssuerV2(GITHUB_ISSUER),
            policy.GitHubWorkflowRepository("acme/app"),
            policy.GitHubWorkflowRef("refs/heads/main"),
            policy.GitHubWorkflowSHA("c" * 40),
            policy.GitHubWorkflowTrigger("push"),
            policy.OIDCBuildSignerURI(claims.identity),
            policy.OIDCBuildSignerDigest("d" * 40),
            policy.OIDCRunnerEnvironment("github-hosted"),
            policy.OIDCSourceRepositoryURI("https://github.com/acme/app"),
            policy.OIDCSourceRepositoryDigest("c" * 40),
            policy.OIDCSourceRepositoryRef("refs/heads/main"),
            policy.OIDCSourceRepositoryIdentifier("100001"),
            policy.OIDCSourceRepositoryOwnerURI("https://github.com/acme"),
            policy.OIDCSourceRepositoryOwnerIdentifier("200002"),
            policy.OIDCBuildConfigURI(
                "https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main"
            ),
            policy.OIDCBuildConfigDigest("c" * 40),
            policy.OIDCBuildTrigger("push"),
            policy.OIDCRunInvocationURI("https://github.com/acme/app/actions/runs/4242/attempts/1"),
            policy.OIDCSourceRepositoryVisibility("public"),
        ]
    )
    sigstore_verifier.verify_dsse(to_bundle(bundle), every_claim)
    with pytest.raises(VerificationError, match="GitHubWorkflowRepository"):
        sigstore_verifier.verify_dsse(
            to_bundle(bundle), policy.GitHubWorkflowRepository("acme/other")
        )


def test_extension_encodings(sigstore_authority: Authority, github_claims: GitHubClaims) -> None:
    issued = sigstore_authority.issue_certificate(
        github_claims.identity, GITHUB_ISSUER, github=github_claims
    )
    cert = issued.certificate
    assert _ext(cert, 1) == GITHUB_ISSUER.encode()  # legacy: raw string
    issuer_der = _ext(cert, 8)
    assert issuer_der[0] == 0x0C and issuer_der[2:] == GITHUB_ISSUER.encode()
    for arc in range(9, 23):
        assert _ext(cert, arc)[0] == 0x0C, f"extension .{arc} is not a UTF8String"
    assert _ext(cert, 5) == b"acme/app"
    assert issued.chain == (
        sigstore_authority.intermediate_certificate,
        sigstore_authority.root_certificate,
    )
    validity = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert validity.total_seconds() == 600


def test_one_certificate_signs_several_artifacts(
    sigstore_authority: Authority, sigstore_verifier: Verifier
) -> None:
    issued = sigstore_authority.issue_certificate(EMAIL, GOOGLE)
    first = sigstore_authority.sign_blob(b"one", identity=EMAIL, issuer=GOOGLE, issued=issued)
    second = sigstore_authority.sign_dsse(STATEMENT, identity=EMAIL, issuer=GOOGLE, issued=issued)
    assert _leaf(first) == _leaf(second) == issued.certificate
    identity = policy.Identity(identity=EMAIL, issuer=GOOGLE)
    sigstore_verifier.verify_artifact(b"one", to_bundle(first), identity)
    sigstore_verifier.verify_dsse(to_bundle(second), identity)
    with pytest.raises(TypeError, match="fresh certificate"):
        sigstore_authority.sign_blob(
            b"x", identity=EMAIL, issuer=GOOGLE, issued=issued, forgery=FORGERIES["untrusted-ca"]
        )


# -- the log ----------------------------------------------------------------------------


def test_merkle_audit_paths_match_rfc9162_verification() -> None:
    tree = MerkleTree()
    for n in range(33):
        tree.append(f"leaf {n}".encode())
    for size in range(1, 34):
        root = tree.root(size)
        for index in range(size):
            path = tree.audit_path(index, size)
            assert verify_inclusion(f"leaf {index}".encode(), index, size, path, root)
            assert not verify_inclusion(b"other", index, size, path, root)


def test_entries_deep_in_the_log_verify(
    sigstore_authority: Authority, sigstore_verifier: Verifier, github_claims: GitHubClaims
) -> None:
    bundles = [
        sigstore_authority.sign_blob(
            f"artifact {n}".encode(),
            identity=github_claims.identity,
            issuer=GITHUB_ISSUER,
            github=github_claims,
        )
        for n in range(12)
    ]
    identity = policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER)
    for n, bundle in enumerate(bundles):
        fresh = sigstore_authority.refresh_proof(bundle)
        proof = fresh["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
        assert int(proof["treeSize"]) == sigstore_authority.rekor.tree.size
        if n < len(bundles) - 1:
            assert int(proof["logIndex"]) < int(proof["treeSize"]) - 1
        sigstore_verifier.verify_artifact(f"artifact {n}".encode(), to_bundle(fresh), identity)


# -- forgeries: each one is what makes the real verifier fail ----------------------------

EXPECTED_REJECTION: dict[str, tuple[type[Exception], str]] = {
    "expired-certificate": (CertValidationError, "not valid at validation time"),
    "integrated-outside-validity": (CertValidationError, "not valid at validation time"),
    "set-signed-by-other-key": (VerificationError, "SET: invalid inclusion promise"),
    "checkpoint-signed-by-other-key": (VerificationError, "checkpoint: invalid signature"),
    "inclusion-proof-mismatch": (VerificationError, "inclusion proof contains invalid root hash"),
    "sct-untrusted-log": (VerificationError, "failed to verify SCT"),
    "sct-over-other-data": (VerificationError, "failed to verify SCT"),
    "other-identity": (VerificationError, "SANs do not match"),
    "other-issuer": (VerificationError, "OIDCIssuer does not match"),
    "untrusted-ca": (CertValidationError, "failed to build timestamp certificate chain"),
}


#: Forgeries of the log evidence; every other forgery leaves the log evidence valid.
LOG_FORGERIES = {
    "set-signed-by-other-key",
    "checkpoint-signed-by-other-key",
    "inclusion-proof-mismatch",
}


def _log_evidence_is_valid(bundle: dict[str, Any], authority: Authority) -> bool:
    """SET, inclusion proof and checkpoint, checked independently of sigstore-python."""
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    proof = entry["inclusionProof"]
    body = base64.b64decode(entry["canonicalizedBody"])
    root = base64.b64decode(proof["rootHash"])
    key = authority.rekor_public_key
    try:
        key.verify(
            base64.b64decode(entry["inclusionPromise"]["signedEntryTimestamp"]),
            rfc8785.dumps(
                {
                    "body": entry["canonicalizedBody"],
                    "integratedTime": int(entry["integratedTime"]),
                    "logID": authority.rekor_log_id.hex(),
                    "logIndex": int(entry["logIndex"]),
                }
            ),
            ec.ECDSA(hashes.SHA256()),
        )
        note, signature_line = proof["checkpoint"]["envelope"].split("\n\n")
        key.verify(
            base64.b64decode(signature_line.split()[-1])[4:],
            (note + "\n").encode(),
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        return False
    return note.split("\n")[2] == proof["rootHash"] and verify_inclusion(
        body,
        int(proof["logIndex"]),
        int(proof["treeSize"]),
        [base64.b64decode(h) for h in proof["hashes"]],
        root,
    )


def test_every_forgery_has_an_expected_rejection() -> None:
    assert set(EXPECTED_REJECTION) == set(FORGERIES)


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_blob_bundle_is_rejected(
    name: str, sigstore_authority: Authority, sigstore_verifier: Verifier
) -> None:
    identity = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
    bundle = sigstore_authority.sign_blob(
        b"forged", identity=identity, issuer=GITHUB_ISSUER, forgery=FORGERIES[name]
    )
    expected = policy.Identity(identity=identity, issuer=GITHUB_ISSUER)
    error, message = EXPECTED_REJECTION[name]
    with pytest.raises(error, match=message):
        sigstore_verifier.verify_artifact(b"forged", to_bundle(bundle), expected)
    # Otherwise valid: the log evidence holds unless it is what was forged ...
    assert _log_evidence_is_valid(bundle, sigstore_authority) is (name not in LOG_FORGERIES)
    # ... and the same call without the forgery verifies.
    genuine = sigstore_authority.sign_blob(b"forged", identity=identity, issuer=GITHUB_ISSUER)
    sigstore_verifier.verify_artifact(b"forged", to_bundle(genuine), expected)


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_dsse_bundle_is_rejected(
    name: str, sigstore_authority: Authority, sigstore_verifier: Verifier
) -> None:
    bundle = sigstore_authority.sign_dsse(
        STATEMENT, identity=EMAIL, issuer=GOOGLE, forgery=FORGERIES[name]
    )
    error, message = EXPECTED_REJECTION[name]
    with pytest.raises(error, match=message):
        sigstore_verifier.verify_dsse(
            to_bundle(bundle), policy.Identity(identity=EMAIL, issuer=GOOGLE)
        )


# -- RFC 3161 timestamps ------------------------------------------------------------------


def test_timestamped_bundles_verify(sigstore_tsa_authority: Authority) -> None:
    verifier = verifier_for(sigstore_tsa_authority)
    blob = to_bundle(
        sigstore_tsa_authority.sign_blob(b"x", identity=EMAIL, issuer=GOOGLE, timestamp=True)
    )
    dsse = to_bundle(
        sigstore_tsa_authority.sign_dsse(STATEMENT, identity=EMAIL, issuer=GOOGLE, timestamp=True)
    )
    # The token itself verifies against the TSA chain in the trust root (not only the log).
    assert len(verifier._verify_timestamp_authority(blob)) == 1
    assert len(verifier._verify_timestamp_authority(dsse)) == 1
    identity = policy.Identity(identity=EMAIL, issuer=GOOGLE)
    verifier.verify_artifact(b"x", blob, identity)
    verifier.verify_dsse(dsse, identity)


def test_timestamp_needs_a_tsa(sigstore_authority: Authority) -> None:
    with pytest.raises(RuntimeError, match="with_tsa"):
        sigstore_authority.sign_blob(b"x", identity=EMAIL, issuer=GOOGLE, timestamp=True)


@pytest.mark.parametrize("name", sorted(TSA_FORGERIES))
def test_forged_timestamp_is_rejected(name: str, sigstore_tsa_authority: Authority) -> None:
    bundle = sigstore_tsa_authority.sign_blob(
        b"x", identity=EMAIL, issuer=GOOGLE, forgery=TSA_FORGERIES[name]
    )
    with pytest.raises(CertValidationError, match="not valid at validation time"):
        verifier_for(sigstore_tsa_authority).verify_artifact(
            b"x", to_bundle(bundle), policy.Identity(identity=EMAIL, issuer=GOOGLE)
        )


# -- the legacy cosign form ---------------------------------------------------------------


def _verify_set(signature: LegacyKeylessSignature, key: ec.EllipticCurvePublicKey) -> None:
    """The legacy check: the SET is the log's ECDSA over RFC 8785 JSON of the Payload."""
    annotation = json.loads(signature.annotations()["dev.sigstore.cosign/bundle"])
    canonical = rfc8785.dumps(annotation["Payload"])
    key.verify(
        base64.b64decode(annotation["SignedEntryTimestamp"]),
        canonical,
        ec.ECDSA(hashes.SHA256()),
    )


def test_legacy_signature_annotations(sigstore_authority: Authority) -> None:
    payload = b'{"critical":{"type":"cosign container image signature"},"optional":null}'
    legacy = sigstore_authority.sign_legacy(payload, identity=EMAIL, issuer=GOOGLE)
    annotations = legacy.annotations()
    _verify_set(legacy, sigstore_authority.rekor_public_key)

    cert = x509.load_pem_x509_certificate(annotations["dev.sigstore.cosign/certificate"].encode())
    chain = x509.load_pem_x509_certificates(annotations["dev.sigstore.cosign/chain"].encode())
    assert chain == [
        sigstore_authority.intermediate_certificate,
        sigstore_authority.root_certificate,
    ]
    cert.verify_directly_issued_by(chain[0])
    signature = base64.b64decode(annotations["dev.cosignproject.cosign/signature"])
    _ec_key(cert).verify(signature, payload, ec.ECDSA(hashes.SHA256()))

    rekor = json.loads(annotations["dev.sigstore.cosign/bundle"])["Payload"]
    assert rekor["logID"] == sigstore_authority.rekor_log_id.hex()
    body = json.loads(base64.b64decode(rekor["body"]))
    assert body["kind"] == "hashedrekord"
    assert body["spec"]["data"]["hash"]["value"] == hashlib.sha256(payload).hexdigest()
    assert base64.b64decode(body["spec"]["signature"]["content"]) == signature
    assert cert.not_valid_before_utc.timestamp() <= rekor["integratedTime"]
    assert rekor["integratedTime"] <= cert.not_valid_after_utc.timestamp()


def test_legacy_forged_set_fails_the_set_check(sigstore_authority: Authority) -> None:
    legacy = sigstore_authority.sign_legacy(
        b"payload", identity=EMAIL, issuer=GOOGLE, forgery=FORGERIES["set-signed-by-other-key"]
    )
    with pytest.raises(InvalidSignature):
        _verify_set(legacy, sigstore_authority.rekor_public_key)


@pytest.mark.parametrize("kind", ["intoto", "dsse"])
def test_legacy_attestation(kind: Literal["intoto", "dsse"], sigstore_authority: Authority) -> None:
    legacy = sigstore_authority.sign_legacy_dsse(
        STATEMENT,
        identity=EMAIL,
        issuer=GOOGLE,
        predicate_type="https://slsa.dev/provenance/v1",
        entry_kind=kind,
    )
    annotations = legacy.annotations()
    assert annotations["dev.cosignproject.cosign/signature"] == ""
    assert annotations["predicateType"] == "https://slsa.dev/provenance/v1"
    _verify_set(legacy, sigstore_authority.rekor_public_key)
    envelope = json.loads(legacy.payload)
    signature = base64.b64decode(envelope["signatures"][0]["sig"])
    _ec_key(legacy.issued.certificate).verify(
        signature, pae(envelope["payloadType"], STATEMENT), ec.ECDSA(hashes.SHA256())
    )

    body = json.loads(base64.b64decode(legacy.bundle["Payload"]["body"]))
    assert body["kind"] == kind
    if kind == "intoto":
        content = body["spec"]["content"]
        assert content["hash"]["value"] == hashlib.sha256(legacy.payload).hexdigest()
        assert content["payloadHash"]["value"] == hashlib.sha256(STATEMENT).hexdigest()
        logged = content["envelope"]["signatures"][0]
        assert base64.b64decode(base64.b64decode(logged["sig"])) == signature
        assert base64.b64decode(logged["publicKey"]).decode() == legacy.certificate_pem
    else:
        assert body["spec"]["payloadHash"]["value"] == hashlib.sha256(STATEMENT).hexdigest()
