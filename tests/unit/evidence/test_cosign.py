"""gate.evidence.cosign: simple-signing payloads, digest binding, key-based signatures."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gate.errors import DigestMismatchError, SignatureError
from gate.evidence.cosign import (
    check_binding,
    decode_signature,
    parse_simple_signing,
    verify_key_signature,
)
from gate.signing import KeyKind, Signer, generate_key_pair
from gate.signing.keys import PrivateKey
from testkit.cosign import simple_signing_payload

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
PAYLOAD = simple_signing_payload("registry.example.com/acme/app", DIGEST)


def test_parse_and_bind() -> None:
    signed = parse_simple_signing(PAYLOAD)
    assert signed.digest == DIGEST
    assert signed.docker_reference == "registry.example.com/acme/app"
    check_binding(signed, DIGEST)


def test_signature_for_another_digest_is_digest_mismatch() -> None:
    with pytest.raises(DigestMismatchError) as e:
        check_binding(parse_simple_signing(PAYLOAD), OTHER)
    assert e.value.reason == "digest-mismatch"
    assert DIGEST in e.value.diagnostics() and OTHER in e.value.diagnostics()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"critical": {}}',
        json.dumps({"critical": {"type": "atomic container signature",
                                 "image": {"docker-manifest-digest": DIGEST}}}).encode(),
        json.dumps({"critical": {"type": "cosign container image signature",
                                 "image": {"docker-manifest-digest": 1}}}).encode(),
    ],
)  # fmt: skip
def test_malformed_payloads_are_bad_signatures(payload: bytes) -> None:
    with pytest.raises(SignatureError) as e:
        parse_simple_signing(payload)
    assert e.value.reason == "bad-signature"


@pytest.mark.parametrize("kind", list(KeyKind))
def test_key_signatures_of_every_kind(kind: KeyKind) -> None:
    pair = generate_key_pair(kind, rsa_bits=2048)
    signature = Signer(pair.private_key).sign(PAYLOAD)
    verify_key_signature(pair.public_key, signature, PAYLOAD)
    with pytest.raises(SignatureError):
        verify_key_signature(pair.public_key, signature, PAYLOAD + b" ")
    with pytest.raises(SignatureError):
        verify_key_signature(generate_key_pair(kind, rsa_bits=2048).public_key, signature, PAYLOAD)


def test_ed25519ph() -> None:
    pair = generate_key_pair(KeyKind.ED25519)
    signature = Signer(pair.private_key, ed25519ph=True).sign(PAYLOAD)
    verify_key_signature(pair.public_key, signature, PAYLOAD)


def test_p384_with_sha256_and_raw_r_s() -> None:
    pair = generate_key_pair(KeyKind.ECDSA_P384)
    key: PrivateKey = pair.private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    der = key.sign(PAYLOAD, ec.ECDSA(hashes.SHA256()))  # older cosign: SHA-256 on P-384
    verify_key_signature(pair.public_key, der, PAYLOAD)
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    verify_key_signature(pair.public_key, raw, PAYLOAD)


def test_rsa_pss_is_not_cosigns_rsa() -> None:
    pair = generate_key_pair(KeyKind.RSA, rsa_bits=2048)
    key = pair.private_key
    pss = key.sign(  # type: ignore[call-arg]
        PAYLOAD,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),  # type: ignore[arg-type]
    )
    with pytest.raises(SignatureError):
        verify_key_signature(pair.public_key, pss, PAYLOAD)


def test_decode_signature() -> None:
    assert decode_signature(base64.b64encode(b"sig").decode()) == b"sig"
    for bad in ("", "not base64!", "   "):
        with pytest.raises(SignatureError):
            decode_signature(bad)


def test_public_key_pem_roundtrip() -> None:
    from gate.evidence.cosign import load_policy_key

    pair = generate_key_pair()
    loaded = load_policy_key(pair.public_pem().decode() + "\n")
    assert loaded.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == pair.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
