"""Raw signatures: verified with `cryptography` directly, as cosign would sign."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gate.errors import SignatureError
from gate.signing import KeyKind, Signer, generate_key_pair, load_public_key, verify_signature

DATA = b'{"critical":{"identity":{"docker-reference":"r/app"}},"optional":null}'


@pytest.fixture(scope="module", params=list(KeyKind))
def signer(request: pytest.FixtureRequest) -> Signer:
    return Signer(generate_key_pair(request.param, rsa_bits=2048).private_key)


def test_signature_verifies_with_cryptography(signer: Signer) -> None:
    sig = signer.sign(DATA)
    pub = load_public_key(signer.public_pem())
    if isinstance(pub, ec.EllipticCurvePublicKey):
        # DER (r, s) as Go's ecdsa.SignASN1 writes, not raw r||s.
        r, s = decode_dss_signature(sig)
        assert r > 0 and s > 0
        digest = hashes.SHA256() if pub.curve.name == "secp256r1" else hashes.SHA384()
        pub.verify(sig, DATA, ec.ECDSA(digest))
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, DATA, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        assert len(sig) == 64
        pub.verify(sig, DATA)


def test_verify_signature_helper(signer: Signer) -> None:
    sig = signer.sign(DATA)
    verify_signature(signer.public_key, sig, DATA)
    with pytest.raises(SignatureError):
        verify_signature(signer.public_key, sig, DATA + b" ")
    other = Signer(generate_key_pair(signer.kind, rsa_bits=2048).private_key)
    with pytest.raises(SignatureError):
        verify_signature(other.public_key, sig, DATA)


def test_p256_public_pem_is_pkix() -> None:
    signer = Signer(generate_key_pair().private_key)
    pem = signer.public_pem()
    assert pem.splitlines()[0] == b"-----BEGIN PUBLIC KEY-----"
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
