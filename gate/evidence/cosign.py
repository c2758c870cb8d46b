"""Cosign legacy image signatures: the simple-signing payload and key-based checks.

Pure: bytes and keys in, a verdict out (an exception), no network.

What binds a cosign signature to an image is the payload, never the tag it
was found under: ``sha256-<hex>.sig`` is writable by anyone who can push to
the repository, so a genuine signature of image A copied under image B's tag
must be refused. The check is ``critical.image.docker-manifest-digest ==``
the digest being verified (cosign ``pkg/cosign/verify.go``,
``VerifyImageSignature``: "invalid or missing digest in claim").
``critical.identity.docker-reference`` is *not* compared, as in cosign: images
are legitimately copied between registries with their signatures.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gate.errors import DigestMismatchError, SignatureError
from gate.signing import ed25519ph
from gate.signing.keys import PublicKey

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLESIGNING_TYPE = "cosign container image signature"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
RFC3161_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"

_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_PAYLOAD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class SimpleSigning:
    """The parts of a simple-signing payload the gate reads."""

    docker_reference: str
    digest: str
    optional: dict[str, Any] | None


def parse_simple_signing(payload: bytes) -> SimpleSigning:
    """Parse a cosign simple-signing payload; a malformed one is a bad signature.

    The payload is parsed only after its signature verified, but a parse failure
    here is still reported as ``bad-signature``: nothing trustworthy was signed.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SignatureError("the signed payload is larger than 1 MiB", reason="bad-signature")
    try:
        doc = json.loads(payload)
        critical = doc["critical"]
        kind = critical["type"]
        digest = critical["image"]["docker-manifest-digest"]
        reference = critical.get("identity", {}).get("docker-reference", "")
        optional = doc.get("optional")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise SignatureError(
            "the signed payload is not a cosign simple-signing payload",
            found=f"{type(e).__name__}: {e}",
            expected='{"critical": {"identity": …, "image": {"docker-manifest-digest": …}, '
            '"type": "cosign container image signature"}, "optional": …}',
        ) from e
    if kind != SIMPLESIGNING_TYPE:
        # Another kind of simple-signing claim (e.g. atomic container signature)
        # is not a cosign image signature: do not accept it as one.
        raise SignatureError(
            "the signed payload is not a cosign container image signature",
            found=repr(kind),
            expected=repr(SIMPLESIGNING_TYPE),
        )
    if not isinstance(digest, str) or not isinstance(reference, str):
        raise SignatureError("the signed payload's digest or reference is not a string")
    if optional is not None and not isinstance(optional, dict):
        raise SignatureError("the signed payload's 'optional' is not an object")
    return SimpleSigning(reference, digest, optional)


def check_binding(signed: SimpleSigning, image_digest: str) -> None:
    """The signed payload must name ``image_digest``: a signature for another digest is a deny."""
    if not _SHA256_DIGEST.fullmatch(image_digest):
        raise TypeError(f"not a sha256 image digest: {image_digest!r}")
    if signed.digest != image_digest:
        raise DigestMismatchError(
            "the signature was made for another image (docker-manifest-digest differs)",
            found=signed.digest,
            expected=image_digest,
            hint="a signature copied from another image, or the tag was moved after signing",
        )


def decode_signature(text: str) -> bytes:
    """The base64 ``dev.cosignproject.cosign/signature`` annotation."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SignatureError("the signature annotation is not base64") from e
    if not raw:
        raise SignatureError("the signature annotation is empty")
    return raw


def _ecdsa_candidates(key: ec.EllipticCurvePublicKey, sig: bytes) -> list[bytes]:
    # Go's ecdsa.SignASN1 writes DER; a few producers write raw r||s. Accept both
    # encodings of the same (r, s): neither lets a third party forge anything.
    out = [sig]
    size = (key.curve.key_size + 7) // 8
    if len(sig) == 2 * size and sig[0] != 0x30:
        r = int.from_bytes(sig[:size], "big")
        s = int.from_bytes(sig[size:], "big")
        out.append(encode_dss_signature(r, s))
    return out


def _verifies(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if isinstance(key, ec.EllipticCurvePublicKey):
        # cosign signs with SHA-256 for P-256; for P-384 sigstore's registry
        # uses SHA-384, older cosign SHA-256: accept the curve's hash and SHA-256.
        algorithms: list[hashes.HashAlgorithm] = [hashes.SHA256()]
        if isinstance(key.curve, ec.SECP384R1):
            algorithms.insert(0, hashes.SHA384())
        elif isinstance(key.curve, ec.SECP521R1):
            algorithms.insert(0, hashes.SHA512())
        for sig in _ecdsa_candidates(key, signature):
            for algorithm in algorithms:
                try:
                    key.verify(sig, data, ec.ECDSA(algorithm))
                    return True
                except InvalidSignature:
                    continue
        return False
    if isinstance(key, rsa.RSAPublicKey):
        # cosign's RSA default is PKCS#1 v1.5 with SHA-256.
        try:
            key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            return False
    if isinstance(key, ed25519.Ed25519PublicKey):
        try:
            key.verify(signature, data)
            return True
        except InvalidSignature:
            pass
        # cosign >= 2.5 signs with Ed25519ph (RFC 8032 §5.1, SHA-512 prehash).
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return ed25519ph.verify(raw, signature, data)
    raise TypeError(f"unsupported key {type(key).__name__}")


def verify_key_signature(key: PublicKey, signature: bytes, data: bytes) -> None:
    """Verify a cosign key-based signature over ``data``; :class:`SignatureError` if not.

    Keys: ECDSA P-256 / P-384 (DER or raw r||s; SHA-256 or the curve's hash),
    Ed25519 (pure or Ed25519ph) and RSA PKCS#1 v1.5 / SHA-256.
    """
    if not _verifies(key, signature, data):
        raise SignatureError(
            "the signature does not verify with the policy key",
            hint="signed with another key, or the payload was changed after signing",
        )


def load_policy_key(pem: str) -> PublicKey:
    """A ``publicKey`` from the policy (validated at load time)."""
    from gate.signing.keys import load_public_key

    return load_public_key(pem.strip().encode())
