"""Cosign-compatible signing: key files, raw signatures, DSSE envelopes.

Used by the gate to sign its own outputs (verification summaries, the
published manifests artifact) and by the testkit to mint evidence. Raw bytes
in, raw bytes out; no network.
"""

from gate.signing.dsse import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    EnvelopeFormatError,
    Signature,
    add_signature,
    pae,
    sign_envelope,
)
from gate.signing.errors import KeyFileError, KeyPasswordError
from gate.signing.keys import (
    ALLOWED_SCRYPT_PARAMS,
    COSIGN_PEM_TYPE,
    SIGSTORE_PEM_TYPE,
    KeyKind,
    KeyPair,
    PrivateKey,
    PublicKey,
    encrypt_private_key,
    generate_key_pair,
    key_kind,
    load_private_key,
    load_public_key,
    public_key_pem,
)
from gate.signing.signer import Signer, verify_signature

__all__ = [
    "ALLOWED_SCRYPT_PARAMS",
    "COSIGN_PEM_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "SIGSTORE_PEM_TYPE",
    "Envelope",
    "EnvelopeFormatError",
    "KeyFileError",
    "KeyKind",
    "KeyPair",
    "KeyPasswordError",
    "PrivateKey",
    "PublicKey",
    "Signature",
    "Signer",
    "add_signature",
    "encrypt_private_key",
    "generate_key_pair",
    "key_kind",
    "load_private_key",
    "load_public_key",
    "pae",
    "public_key_pem",
    "sign_envelope",
    "verify_signature",
]
