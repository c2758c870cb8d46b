"""Cosign key files: generate, encrypt, decrypt, and PEM public keys.

The private key format is the one cosign (and go-securesystemslib's
``encrypted`` package) writes: a PEM block ``ENCRYPTED SIGSTORE PRIVATE KEY``
(older cosign: ``ENCRYPTED COSIGN PRIVATE KEY``) around JSON::

    {"kdf": {"name": "scrypt", "params": {"N": 32768, "r": 8, "p": 1}, "salt": b64},
     "cipher": {"name": "nacl/secretbox", "nonce": b64},
     "ciphertext": b64}

The key is scrypt(password, salt) (32 bytes), the cipher is NaCl secretbox
and the plaintext is the PKCS#8 DER private key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeAlias

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gate.signing.errors import KeyFileError, KeyPasswordError

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

SIGSTORE_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
_READABLE_PEM_TYPES = (SIGSTORE_PEM_TYPE, COSIGN_PEM_TYPE)

# The only parameter sets go-securesystemslib accepts when decrypting. Anything
# else is either a weakened KDF (small N) or a denial of service (huge N), so a
# key file that asks for it is refused before scrypt runs.
ALLOWED_SCRYPT_PARAMS: frozenset[tuple[int, int, int]] = frozenset(
    {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}
)
DEFAULT_SCRYPT_N = 32768  # what `cosign generate-key-pair` writes
_SALT_BYTES = 32
_KEY_BYTES = 32
_SCRYPT_MAXMEM = 256 * 1024 * 1024  # 128 * r * N * 2 for N = 131072 is 256 MiB


class KeyKind(StrEnum):
    """The key types cosign supports for key files."""

    ECDSA_P256 = "ecdsa-p256"  # cosign's default
    ECDSA_P384 = "ecdsa-p384"
    ED25519 = "ed25519"
    RSA = "rsa"  # 3072 bits by default here


@dataclass(frozen=True)
class KeyPair:
    private_key: PrivateKey

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    def public_pem(self) -> bytes:
        return public_key_pem(self.public_key)

    def private_pem(self, password: bytes, *, scrypt_n: int = DEFAULT_SCRYPT_N) -> bytes:
        return encrypt_private_key(self.private_key, password, scrypt_n=scrypt_n)


def generate_key_pair(kind: KeyKind | str = KeyKind.ECDSA_P256, *, rsa_bits: int = 3072) -> KeyPair:
    kind = KeyKind(kind)
    key: PrivateKey
    if kind is KeyKind.ECDSA_P256:
        key = ec.generate_private_key(ec.SECP256R1())
    elif kind is KeyKind.ECDSA_P384:
        key = ec.generate_private_key(ec.SECP384R1())
    elif kind is KeyKind.ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    return KeyPair(key)


def key_kind(key: PrivateKey | PublicKey) -> KeyKind:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return KeyKind.ECDSA_P256
        if isinstance(key.curve, ec.SECP384R1):
            return KeyKind.ECDSA_P384
        raise KeyFileError(
            f"unsupported elliptic curve {key.curve.name}",
            expected="P-256 or P-384",
        )
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return KeyKind.ED25519
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeyKind.RSA
    raise TypeError(f"not a supported key object: {type(key).__name__}")


# --- public keys ---------------------------------------------------------------


def public_key_pem(key: PublicKey) -> bytes:
    """PEM ``PUBLIC KEY`` (PKIX SubjectPublicKeyInfo), as in ``cosign.pub``."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            "not a PEM public key", found=_first_line(pem), expected="-----BEGIN PUBLIC KEY-----"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise KeyFileError(f"unsupported public key type {type(key).__name__}")
    key_kind(key)  # rejects other curves
    return key


# --- encrypted private keys ----------------------------------------------------


def encrypt_private_key(
    key: PrivateKey,
    password: bytes,
    *,
    scrypt_n: int = DEFAULT_SCRYPT_N,
    pem_type: str = SIGSTORE_PEM_TYPE,
) -> bytes:
    """Write ``key`` as cosign does (``ENCRYPTED SIGSTORE PRIVATE KEY``)."""
    if (scrypt_n, 8, 1) not in ALLOWED_SCRYPT_PARAMS:
        raise ValueError(f"scrypt N={scrypt_n} is not one cosign accepts")
    if pem_type not in _READABLE_PEM_TYPES:
        raise ValueError(f"unknown PEM type {pem_type!r}")
    key_kind(key)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = os.urandom(_SALT_BYTES)
    box = nacl.secret.SecretBox(_derive(password, salt, scrypt_n, 8, 1))
    nonce = os.urandom(nacl.secret.SecretBox.NONCE_SIZE)
    # SecretBox.encrypt returns nonce || box; Go's secretbox.Seal writes only the box.
    ciphertext = box.encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": scrypt_n, "r": 8, "p": 1},
            "salt": _b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": _b64(nonce)},
        "ciphertext": _b64(ciphertext),
    }
    return _pem_encode(pem_type, json.dumps(doc, separators=(",", ":")).encode())


def load_private_key(pem: bytes, password: bytes) -> PrivateKey:
    """Read a cosign key file; wrong password → :class:`KeyPasswordError`."""
    pem_type, body = _pem_decode(pem)
    if pem_type not in _READABLE_PEM_TYPES:
        raise KeyFileError(
            "not a cosign private key file",
            found=f"PEM type {pem_type!r}",
            expected=f"{SIGSTORE_PEM_TYPE!r} or {COSIGN_PEM_TYPE!r}",
        )
    try:
        doc = json.loads(body)
        kdf, cipher = doc["kdf"], doc["cipher"]
        params = kdf["params"]
        n, r, p = int(params["N"]), int(params["r"]), int(params["p"])
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        ciphertext = base64.b64decode(doc["ciphertext"], validate=True)
        kdf_name, cipher_name = kdf["name"], cipher["name"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise KeyFileError("the key file's JSON is malformed", found=str(exc)) from exc
    if kdf_name != "scrypt" or cipher_name != "nacl/secretbox":
        raise KeyFileError(
            "unsupported key file encryption",
            found=f"kdf {kdf_name!r}, cipher {cipher_name!r}",
            expected="kdf 'scrypt', cipher 'nacl/secretbox'",
        )
    if (n, r, p) not in ALLOWED_SCRYPT_PARAMS:
        raise KeyFileError(
            "refusing scrypt parameters outside cosign's allow-list",
            found=f"N={n}, r={r}, p={p}",
            expected="N in {32768, 65536, 131072}, r=8, p=1",
        )
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyFileError("the key file's nonce has the wrong length", found=str(len(nonce)))
    try:
        der = nacl.secret.SecretBox(_derive(password, salt, n, r, p)).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError as exc:
        raise KeyPasswordError(
            "wrong password for the cosign key file (decryption failed)",
            hint="check the password (e.g. $GATE_VSA_KEY_PASSWORD); cosign's is $COSIGN_PASSWORD",
        ) from exc
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError("the decrypted key is not PKCS#8 DER") from exc
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise KeyFileError(f"unsupported private key type {type(key).__name__}")
    key_kind(key)
    return key


def scrypt_params(pem: bytes) -> dict[str, Any]:
    """The KDF parameters of a key file (for diagnostics and tests)."""
    _, body = _pem_decode(pem)
    try:
        params: dict[str, Any] = json.loads(body)["kdf"]["params"]
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyFileError("the key file's JSON is malformed") from exc
    return params


def _derive(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=_KEY_BYTES, maxmem=_SCRYPT_MAXMEM
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pem_encode(pem_type: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (
        "\n".join([f"-----BEGIN {pem_type}-----", *lines, f"-----END {pem_type}-----"]) + "\n"
    ).encode()


def _pem_decode(pem: bytes) -> tuple[str, bytes]:
    try:
        lines = [line.strip() for line in pem.decode("ascii").strip().splitlines()]
    except UnicodeDecodeError as exc:
        raise KeyFileError("the key file is not PEM text") from exc
    if len(lines) < 2 or not lines[0].startswith("-----BEGIN ") or not lines[0].endswith("-----"):
        raise KeyFileError("the key file is not PEM", found=_first_line(pem))
    pem_type = lines[0][len("-----BEGIN ") : -len("-----")]
    end = f"-----END {pem_type}-----"
    if end not in lines:
        raise KeyFileError("the PEM block has no matching END line", expected=end)
    body_lines = lines[1 : lines.index(end)]
    if any(":" in line for line in body_lines):
        raise KeyFileError("PEM headers are not supported in cosign key files")
    try:
        return pem_type, base64.b64decode("".join(body_lines), validate=True)
    except binascii.Error as exc:
        raise KeyFileError("the PEM body is not base64") from exc


def _first_line(data: bytes) -> str:
    return data[:80].split(b"\n", 1)[0].decode("ascii", "replace")
