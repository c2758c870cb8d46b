"""Sign bytes as cosign does with a key file.

Algorithms, following cosign's defaults for each key type (sigstore's
algorithm registry, ``LoadDefaultSignerVerifier``):

- ECDSA P-256 with SHA-256, ECDSA P-384 with SHA-384; signatures are ASN.1
  DER (r, s), as Go's ``ecdsa.SignASN1`` writes them, not raw r||s.
- RSA: PKCS#1 v1.5 with SHA-256 (what cosign uses for RSA keys; not PSS).
- Ed25519: pure Ed25519 over the message by default (older cosign, and
  sigstore's ``LoadED25519SignerVerifier``). Cosign >= 2.5 signs with
  Ed25519ph (pre-hashed, RFC 8032) by default so that Rekor hashedrekord
  entries work: ``Signer(key, ed25519ph=True)`` produces that form, through
  our own RFC 8032 arithmetic (``cryptography`` has no Ed25519ph).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gate.errors import SignatureError
from gate.signing import ed25519ph as _ed25519ph
from gate.signing.keys import KeyKind, PrivateKey, PublicKey, key_kind, public_key_pem


def _hash_for(key: PrivateKey | PublicKey) -> hashes.HashAlgorithm:
    return hashes.SHA384() if key_kind(key) is KeyKind.ECDSA_P384 else hashes.SHA256()


@dataclass(frozen=True)
class Signer:
    """A private key that signs raw bytes and returns the raw signature."""

    private_key: PrivateKey
    #: Ed25519 keys only: sign SHA-512(message) as Ed25519ph (cosign >= 2.5).
    ed25519ph: bool = False

    def __post_init__(self) -> None:
        kind = key_kind(self.private_key)  # refuse unsupported curves up front
        if self.ed25519ph and kind is not KeyKind.ED25519:
            raise TypeError("ed25519ph applies to Ed25519 keys only")

    @property
    def kind(self) -> KeyKind:
        return key_kind(self.private_key)

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def sign(self, data: bytes) -> bytes:
        key = self.private_key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(_hash_for(key)))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if self.ed25519ph:
            seed = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            return _ed25519ph.sign(seed, data)
        return key.sign(data)


def verify_signature(
    public_key: PublicKey, signature: bytes, data: bytes, *, ed25519ph: bool = False
) -> None:
    """Check a signature made by :class:`Signer`; raise :class:`SignatureError` if bad."""
    if ed25519ph:
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise TypeError("ed25519ph applies to Ed25519 keys only")
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if not _ed25519ph.verify(raw, signature, data):
            raise SignatureError(
                "signature does not verify with the given key",
                expected="an Ed25519ph signature over these bytes",
            )
        return
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(_hash_for(public_key)))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:  # pragma: no cover - the type alias is closed
            raise TypeError(f"unsupported key {type(public_key).__name__}")
    except InvalidSignature as exc:
        raise SignatureError(
            "signature does not verify with the given key",
            expected=f"a {key_kind(public_key).value} signature over these bytes",
        ) from exc
