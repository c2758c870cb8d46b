"""DSSE: PAE byte for byte, envelope JSON, and verification by securesystemslib."""

from __future__ import annotations

import base64
import json

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from gate.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeFormatError,
    KeyKind,
    Signer,
    add_signature,
    generate_key_pair,
    pae,
    sign_envelope,
    verify_signature,
)


def test_pae_matches_spec_examples() -> None:
    # The DSSE spec's own test vector (protocol.md).
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    # Lengths are byte lengths, not character counts.
    assert pae("t\u00e9", "\u00e9".encode()) == b"DSSEv1 3 t\xc3\xa9 2 \xc3\xa9"
    body = b'{"_type":"https://in-toto.io/Statement/v1"}'
    assert pae(IN_TOTO_PAYLOAD_TYPE, body) == (
        b"DSSEv1 28 application/vnd.in-toto+json " + str(len(body)).encode() + b" " + body
    )


def test_envelope_json_as_cosign_writes_it() -> None:
    signer = Signer(generate_key_pair().private_key)
    env = sign_envelope(b'{"a":1}', IN_TOTO_PAYLOAD_TYPE, signer)
    doc = json.loads(env.to_json())
    assert list(doc) == ["payloadType", "payload", "signatures"]
    assert doc["payload"] == base64.b64encode(b'{"a":1}').decode()
    assert doc["signatures"][0]["keyid"] == ""
    verify_signature(signer.public_key, base64.b64decode(doc["signatures"][0]["sig"]), env.pae())
    assert Envelope.from_json(env.to_json()) == env


def test_from_json_accepts_url_safe_and_unpadded() -> None:
    payload = b"\xfb\xff\xfe?"
    doc = {
        "payloadType": "x",
        "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
        "signatures": [{"sig": base64.b64encode(b"s").decode()}],
    }
    env = Envelope.from_json(json.dumps(doc))
    assert env.payload == payload and env.signatures[0].keyid == ""


@pytest.mark.parametrize(
    "bad", [b"[]", b"{}", b"nope", b'{"payloadType":"x","payload":"!!"}', b'{"payloadType":1}']
)
def test_from_json_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(EnvelopeFormatError):
        Envelope.from_json(bad)


@pytest.mark.parametrize("kind", [KeyKind.ECDSA_P256, KeyKind.ECDSA_P384, KeyKind.ED25519])
def test_securesystemslib_verifies_our_envelope(kind: KeyKind) -> None:
    pair = generate_key_pair(kind)
    signer = Signer(pair.private_key)
    scheme = {
        KeyKind.ECDSA_P256: "ecdsa-sha2-nistp256",
        KeyKind.ECDSA_P384: "ecdsa-sha2-nistp384",
        KeyKind.ED25519: "ed25519",
    }[kind]
    key = SSlibKey.from_crypto(pair.public_key, scheme=scheme)
    # securesystemslib only tries keys whose keyid equals the signature's
    # keyid, so sign with the sslib keyid here (cosign writes "").
    env = sign_envelope(b'{"x":1}', IN_TOTO_PAYLOAD_TYPE, signer, keyid=key.keyid)
    ssl_env = SslibEnvelope.from_dict(json.loads(env.to_json()))
    verified = ssl_env.verify([key], 1)
    assert key.keyid in verified
    # cosign's keyid "" is invisible to securesystemslib: the threshold fails.
    anon = SslibEnvelope.from_dict(
        json.loads(sign_envelope(b"{}", IN_TOTO_PAYLOAD_TYPE, signer).to_json())
    )
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        anon.verify([key], 1)


def test_add_signature_keeps_payload() -> None:
    a, b = (Signer(generate_key_pair().private_key) for _ in range(2))
    env = add_signature(sign_envelope(b"p", "t", a), b, keyid="b")
    assert [s.keyid for s in env.signatures] == ["", "b"]
    for signer, sig in zip((a, b), env.signatures, strict=True):
        verify_signature(signer.public_key, sig.sig, pae("t", b"p"))
