"""Cosign key files: round trips, wrong passwords, KDF allow-list, foreign files."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import nacl.secret
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gate.errors import UsageError
from gate.signing import (
    COSIGN_PEM_TYPE,
    KeyFileError,
    KeyKind,
    KeyPasswordError,
    Signer,
    encrypt_private_key,
    generate_key_pair,
    key_kind,
    load_private_key,
    load_public_key,
    public_key_pem,
)
from gate.signing.keys import scrypt_params

PASSWORD = b"correct horse"


def _raw(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("kind", list(KeyKind))
def test_round_trip_each_key_type(kind: KeyKind) -> None:
    pair = generate_key_pair(kind, rsa_bits=2048)
    pem = pair.private_pem(PASSWORD)
    assert pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert pem.endswith(b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    loaded = load_private_key(pem, PASSWORD)
    assert key_kind(loaded) is kind
    assert _raw(loaded) == _raw(pair.private_key)
    pub = load_public_key(pair.public_pem())
    assert public_key_pem(pub) == pair.public_pem()
    assert pair.public_pem().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_default_is_p256_with_cosign_kdf_params() -> None:
    pair = generate_key_pair()
    assert pair.private_key.curve.name == "secp256r1"  # type: ignore[union-attr]
    pem = pair.private_pem(PASSWORD)
    assert scrypt_params(pem) == {"N": 32768, "r": 8, "p": 1}
    body = json.loads(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt"
    assert body["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32
    assert len(base64.b64decode(body["cipher"]["nonce"])) == 24


@pytest.mark.parametrize("n", [65536, 131072])
def test_larger_allowed_n(n: int) -> None:
    pair = generate_key_pair()
    pem = pair.private_pem(PASSWORD, scrypt_n=n)
    assert scrypt_params(pem)["N"] == n
    assert _raw(load_private_key(pem, PASSWORD)) == _raw(pair.private_key)


def test_wrong_password_is_a_usage_error() -> None:
    pem = generate_key_pair().private_pem(PASSWORD)
    with pytest.raises(KeyPasswordError) as info:
        load_private_key(pem, b"wrong")
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2
    assert info.value.reason == "key-password"
    assert "wrong password" in info.value.diagnostics()


def test_empty_password_works_like_cosign() -> None:
    # cosign accepts COSIGN_PASSWORD="" and still encrypts.
    pair = generate_key_pair()
    pem = pair.private_pem(b"")
    assert _raw(load_private_key(pem, b"")) == _raw(pair.private_key)
    with pytest.raises(KeyPasswordError):
        load_private_key(pem, b"x")


def _foreign_key_file(
    der: bytes,
    password: bytes,
    *,
    n: int = 32768,
    r: int = 8,
    p: int = 1,
    pem_type: str = "ENCRYPTED SIGSTORE PRIVATE KEY",
    kdf_name: str = "scrypt",
) -> bytes:
    """A key file built independently of gate.signing, field by field as
    /work/shared/reference/cosign_key.py and go-securesystemslib describe it."""
    salt, nonce = os.urandom(32), os.urandom(24)
    # Derive with small parameters when the test wants a rejected set: the
    # reader must refuse before it runs scrypt, so the key never matters.
    if (n, r, p) in {(32768, 8, 1), (65536, 8, 1), (131072, 8, 1)}:
        key = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=2**28)
    else:
        key = b"\x00" * 32
    box = nacl.secret.SecretBox(key).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {
            "name": kdf_name,
            "params": {"N": n, "r": r, "p": p},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(box).decode(),
    }
    b64 = base64.b64encode(json.dumps(doc).encode()).decode()
    body = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return f"-----BEGIN {pem_type}-----\n{body}\n-----END {pem_type}-----\n".encode()


@pytest.mark.parametrize("pem_type", ["ENCRYPTED SIGSTORE PRIVATE KEY", COSIGN_PEM_TYPE])
def test_reads_independently_built_file(pem_type: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _foreign_key_file(_raw(key), b"pw", pem_type=pem_type)
    assert _raw(load_private_key(pem, b"pw")) == _raw(key)


def test_reference_sketch_reads_our_files() -> None:
    """Our writer against the shared reference reader (skipped when absent)."""
    import importlib.util
    from pathlib import Path

    ref = Path(__file__).resolve().parents[4] / "shared" / "reference" / "cosign_key.py"
    if not ref.exists():
        pytest.skip(f"reference sketch not found at {ref}")
    spec = importlib.util.spec_from_file_location("cosign_key_reference", ref)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pair = generate_key_pair(KeyKind.ED25519)
    loaded, params = mod.load_cosign_key(pair.private_pem(b"pw"), b"pw")
    assert _raw(loaded) == _raw(pair.private_key)
    assert params == {"N": 32768, "r": 8, "p": 1}


@pytest.mark.parametrize(
    ("n", "r", "p"),
    [(16384, 8, 1), (1 << 20, 8, 1), (32768, 1, 1), (32768, 8, 2), (32769, 8, 1)],
)
def test_rejects_kdf_params_outside_allow_list(n: int, r: int, p: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _foreign_key_file(_raw(key), b"pw", n=n, r=r, p=p)
    with pytest.raises(KeyFileError, match="allow-list") as info:
        load_private_key(pem, b"pw")
    assert not isinstance(info.value, KeyPasswordError)


def test_rejects_other_kdf_and_pem_types() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyFileError, match="encryption"):
        load_private_key(_foreign_key_file(_raw(key), b"pw", kdf_name="pbkdf2"), b"pw")
    with pytest.raises(KeyFileError, match="not a cosign private key"):
        load_private_key(_foreign_key_file(_raw(key), b"pw", pem_type="PRIVATE KEY"), b"pw")
    plain = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFileError):
        load_private_key(plain, b"")
    for junk in (b"", b"not pem", b"\xff\xfe", b"-----BEGIN X-----\n!!!\n-----END X-----\n"):
        with pytest.raises(KeyFileError):
            load_private_key(junk, b"")


def test_rejects_unsupported_curve() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    pem = _foreign_key_file(_raw(key), b"pw")
    with pytest.raises(KeyFileError, match="curve"):
        load_private_key(pem, b"pw")
    with pytest.raises(KeyFileError):
        load_public_key(public_key_pem(key.public_key()))
    with pytest.raises(KeyFileError):
        Signer(key)


def test_writer_refuses_other_params() -> None:
    with pytest.raises(ValueError):
        encrypt_private_key(generate_key_pair().private_key, b"", scrypt_n=1024)


def test_public_key_errors() -> None:
    with pytest.raises(KeyFileError):
        load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
