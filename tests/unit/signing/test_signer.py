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


def test_ed25519ph_rfc8032_vector() -> None:
    from gate.signing import ed25519ph

    # RFC 8032 section 7.3, "TEST abc".
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    public = bytes.fromhex("ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    expected = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    assert ed25519ph.public_key(seed) == public
    assert ed25519ph.sign(seed, b"abc") == expected
    assert ed25519ph.verify(public, expected, b"abc")
    assert not ed25519ph.verify(public, expected, b"abd")
    assert not ed25519ph.verify(public, expected[:32] + b"\xff" * 32, b"abc")  # s >= q
    assert not ed25519ph.verify(b"\x00" * 31, expected, b"abc")


def test_signer_ed25519ph_mode() -> None:
    pair = generate_key_pair(KeyKind.ED25519)
    ph = Signer(pair.private_key, ed25519ph=True)
    sig = ph.sign(DATA)
    verify_signature(pair.public_key, sig, DATA, ed25519ph=True)
    with pytest.raises(SignatureError):
        verify_signature(pair.public_key, sig, DATA)  # not a pure Ed25519 signature
    with pytest.raises(SignatureError):
        verify_signature(pair.public_key, Signer(pair.private_key).sign(DATA), DATA, ed25519ph=True)
    with pytest.raises(TypeError):
        Signer(generate_key_pair().private_key, ed25519ph=True)
