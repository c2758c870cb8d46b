"""Sigstore bundles v0.3: keyless through sigstore-python, key-based through our own path.

Pure: bundle bytes and trust anchors in, no network (the ``Verifier`` is built
from a trust root object; it never refreshes TUF).

Keyless: ``sigstore.verify.Verifier(trusted_root=…)`` with our
:class:`~gate.evidence.identity.KeylessPolicy` does the Sigstore client spec
(time from the log or a TSA, chain at that time, SCT, identity, inclusion
proof, checkpoint, SET, signature, entry-body consistency). ``verify_dsse``
checks neither the payload type nor the statement, so we do
(:func:`check_statement`): an in-toto statement whose subject digest is the
image and whose predicate type is the one asked for; otherwise a valid bundle
for another artifact (or another kind of claim) would pass.

Key-based (``verificationMaterial.publicKey``; sigstore-python 4.5 refuses
them): the signature must verify with the policy key over the artifact (or
the DSSE PAE); any tlog entry the bundle carries must verify against the
trust root and record this signature (a key-based bundle without entries is
accepted, as ``cosign verify --key`` offline and Flux do).

Failures from sigstore-python arrive as one exception type with a message;
we map them to our reason codes (the mapping only picks *which* deny, it
never turns a failure into a pass).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gate.errors import DigestMismatchError, SignatureError, VerificationError
from gate.evidence.cosign import verify_key_signature
from gate.evidence.encoding import b64_field
from gate.evidence.identity import KeylessPolicy, read_identity
from gate.evidence.rekor import TlogError, verify_hashedrekord_body
from gate.policy.model import KeylessIdentity
from gate.signing.dsse import IN_TOTO_PAYLOAD_TYPE, pae
from gate.signing.keys import PublicKey
from gate.sources.trustroot import TrustRoot

BUNDLE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
    }
)
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
STATEMENT_TYPES = frozenset(
    {"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"}
)
MAX_BUNDLE_BYTES = 1024 * 1024


class BundleFormatError(SignatureError):
    """The bytes are not a Sigstore bundle we can verify."""

    reason = "bad-signature"


@dataclass(frozen=True)
class Artifact:
    """What a message signature covers: the bytes, or only their SHA-256."""

    sha256: bytes
    data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Artifact:
        return cls(hashlib.sha256(data).digest(), data)


@dataclass(frozen=True)
class VerifiedBundle:
    """A bundle whose signature held: what it signed and who signed it."""

    content: str  # "dsse-envelope" | "message-signature"
    payload_type: str | None
    payload: bytes | None
    certificate: x509.Certificate | None
    signer_id: str  # a stable identity for threshold counting


def load_bundle_json(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleFormatError("the Sigstore bundle is larger than 1 MiB")
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise BundleFormatError(f"the Sigstore bundle is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise BundleFormatError("the Sigstore bundle is not a JSON object")
    if doc.get("mediaType") not in BUNDLE_MEDIA_TYPES:
        raise BundleFormatError(
            "unsupported Sigstore bundle media type",
            found=repr(doc.get("mediaType")),
            expected=", ".join(sorted(BUNDLE_MEDIA_TYPES)),
        )
    return doc


def is_key_bundle(doc: dict[str, Any]) -> bool:
    material = doc.get("verificationMaterial")
    return isinstance(material, dict) and "publicKey" in material


# --- keyless -------------------------------------------------------------------------------

_VERIFIERS: dict[bytes, Any] = {}


def _verifier(root: TrustRoot) -> Any:
    from sigstore.verify import Verifier

    key = hashlib.sha256(root.raw).digest()
    verifier = _VERIFIERS.get(key)
    if verifier is None:
        verifier = _VERIFIERS[key] = Verifier(trusted_root=root.sigstore)
    return verifier


def _log_time(doc: dict[str, Any]) -> dt.datetime | None:
    try:
        t = int(doc["verificationMaterial"]["tlogEntries"][0]["integratedTime"])
        return dt.datetime.fromtimestamp(t, tz=dt.UTC)
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _map_sigstore_failure(
    message: str, policy: KeylessPolicy, cert: x509.Certificate | None, doc: dict[str, Any]
) -> VerificationError:
    """Pick our reason for a sigstore-python failure (it is a deny whatever we pick)."""
    if policy.failure is not None:
        return policy.failure
    text = message.lower()
    cls: type[VerificationError] = SignatureError
    reason = "bad-signature"
    if "expired" in text:
        reason = "certificate-expired"
    elif "certificate chain" in text:
        reason = "untrusted-signer"
        at = _log_time(doc)
        if (
            cert is not None
            and at is not None
            and not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc
        ):
            reason = "certificate-expired"
    elif "sct" in text:
        reason = "sct-invalid"
    elif any(
        w in text
        for w in ("log entry", "set:", "inclusion", "checkpoint", "verified time", "tlog", "rekor")
    ):
        cls, reason = TlogError, "tlog-invalid"
    return cls(f"the Sigstore bundle does not verify: {message}", reason=reason)


def verify_keyless_bundle(
    data: bytes,
    root: TrustRoot,
    expected: KeylessIdentity,
    artifact: Artifact | None = None,
) -> VerifiedBundle:
    """Verify a certificate bundle with sigstore-python and our identity policy.

    DSSE bundles need no ``artifact`` (check the statement with
    :func:`check_statement`); message signatures are verified over ``artifact``.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle
    from sigstore_models.common.v1 import HashAlgorithm

    doc = load_bundle_json(data)
    if is_key_bundle(doc):
        raise SignatureError(
            "the bundle is signed with a public key, not a keyless certificate",
            reason="untrusted-signer",
        )
    try:
        bundle = Bundle.from_json(data)
    except (SigstoreError, ValueError, TypeError, KeyError) as e:
        raise BundleFormatError(f"the Sigstore bundle is invalid: {e}") from e
    cert = bundle.signing_certificate
    policy = KeylessPolicy(expected)
    verifier = _verifier(root)
    try:
        if bundle._dsse_envelope is not None:
            payload_type, payload = verifier.verify_dsse(bundle, policy)
            content = "dsse-envelope"
        else:
            if artifact is None:
                raise BundleFormatError("a message-signature bundle needs the artifact")
            given: bytes | Hashed = (
                artifact.data
                if artifact.data is not None
                else Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact.sha256)
            )
            verifier.verify_artifact(given, bundle, policy)
            payload_type, payload, content = None, None, "message-signature"
    except SigstoreError as e:
        raise _map_sigstore_failure(str(e), policy, cert, doc) from e
    identity = read_identity(cert)
    return VerifiedBundle(
        content,
        payload_type,
        payload,
        cert,
        f"keyless:{identity.issuer}:{identity.subject}",
    )


# --- key-based -----------------------------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    return b64_field(value, f"bundle's {what}", BundleFormatError)


def key_fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _verify_key_entries(
    doc: dict[str, Any],
    key: PublicKey,
    root: TrustRoot | None,
    signature: bytes,
    digest: bytes,
    dsse_payload: bytes | None,
) -> None:
    entries = doc["verificationMaterial"].get("tlogEntries") or []
    if not isinstance(entries, list):
        raise BundleFormatError("tlogEntries is not a list")
    if not entries:
        return
    if root is None:
        raise TlogError("the bundle has a transparency log entry but no trust root is configured")
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.rekor.v1 import TransparencyLogEntry as EntryModel

    for raw in entries:
        try:
            entry = TransparencyLogEntry(EntryModel.from_json(json.dumps(raw)))
            entry._verify(root.sigstore.rekor_keyring(KeyringPurpose.VERIFY))
        except (SigstoreError, ValueError, TypeError, KeyError) as e:
            raise TlogError(f"the bundle's transparency log entry does not verify: {e}") from e
        body = _b64(raw.get("canonicalizedBody"), "canonicalizedBody")
        kind = (raw.get("kindVersion") or {}).get("kind")
        if kind == "hashedrekord" and dsse_payload is None:
            verify_hashedrekord_body(body, digest=digest, signature=signature, signer=key)
        elif kind == "dsse" and dsse_payload is not None:
            _verify_dsse_body(body, dsse_payload, signature, key)
        else:
            raise TlogError(f"unsupported transparency log entry kind {kind!r} for this bundle")


def _verify_dsse_body(body: bytes, payload: bytes, signature: bytes, key: PublicKey) -> None:
    try:
        spec = json.loads(body)["spec"]
        payload_hash = spec["payloadHash"]["value"]
        sigs = [
            (base64.b64decode(s["signature"]), base64.b64decode(s["verifier"]))
            for s in spec["signatures"]
        ]
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise TlogError(f"the dsse log entry is malformed: {e}") from e
    if payload_hash != hashlib.sha256(payload).hexdigest():
        raise TlogError("the dsse log entry is for another payload")
    spki = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not any(s == signature and v.strip() == spki.strip() for s, v in sigs):
        raise TlogError("the dsse log entry records another signature or key")


def verify_key_bundle(
    data: bytes,
    key: PublicKey,
    artifact: Artifact | None = None,
    root: TrustRoot | None = None,
) -> VerifiedBundle:
    """Verify a public-key bundle with the policy ``key`` (our own path)."""
    doc = load_bundle_json(data)
    if not is_key_bundle(doc):
        raise SignatureError(
            "the bundle is signed with a keyless certificate, not the policy's public key",
            reason="untrusted-signer",
        )
    fingerprint = key_fingerprint(key)
    hint = (doc["verificationMaterial"].get("publicKey") or {}).get("hint")
    if isinstance(hint, str) and hint and hint != fingerprint:
        # The hint is unauthenticated; it only decides which deny we report.
        raise SignatureError(
            "the bundle was signed with another key",
            reason="untrusted-signer",
            found=f"key hint {hint}",
            expected=f"{fingerprint} (the policy key)",
        )
    if "dsseEnvelope" in doc:
        env = doc["dsseEnvelope"]
        if not isinstance(env, dict):
            raise BundleFormatError("dsseEnvelope is not an object")
        payload = _b64(env.get("payload"), "DSSE payload")
        payload_type = env.get("payloadType")
        if not isinstance(payload_type, str):
            raise BundleFormatError("the DSSE payloadType is not a string")
        sigs = env.get("signatures")
        if not isinstance(sigs, list) or len(sigs) != 1:
            raise BundleFormatError("a bundle's DSSE envelope must carry exactly one signature")
        signature = _b64(sigs[0].get("sig") if isinstance(sigs[0], dict) else None, "signature")
        try:
            verify_key_signature(key, signature, pae(payload_type, payload))
        except SignatureError as e:
            raise SignatureError(
                "the DSSE signature does not verify with the policy key",
                hint="the statement was changed after signing, or another key signed it",
            ) from e
        _verify_key_entries(
            doc, key, root, signature, hashlib.sha256(pae(payload_type, payload)).digest(), payload
        )
        return VerifiedBundle("dsse-envelope", payload_type, payload, None, f"key:{fingerprint}")
    ms = doc.get("messageSignature")
    if not isinstance(ms, dict):
        raise BundleFormatError("the bundle has neither a DSSE envelope nor a message signature")
    if artifact is None or artifact.data is None:
        raise BundleFormatError("a key-based message signature needs the artifact bytes")
    signature = _b64(ms.get("signature"), "message signature")
    md = ms.get("messageDigest")
    if (
        isinstance(md, dict)
        and md.get("digest") is not None
        and _b64(md.get("digest"), "message digest") != artifact.sha256
    ):
        raise DigestMismatchError(
            "the bundle's message digest is not the artifact's",
            expected=artifact.sha256.hex(),
        )
    verify_key_signature(key, signature, artifact.data)
    _verify_key_entries(doc, key, root, signature, artifact.sha256, None)
    return VerifiedBundle("message-signature", None, None, None, f"key:{fingerprint}")


# --- what was signed -----------------------------------------------------------------------


def _statement(payload_type: str | None, payload: bytes | None) -> dict[str, Any]:
    if payload_type != IN_TOTO_PAYLOAD_TYPE or payload is None:
        # Another payload type is another kind of claim: never read it as a statement.
        raise SignatureError(
            "the signed envelope is not an in-toto statement",
            found=repr(payload_type),
            expected=IN_TOTO_PAYLOAD_TYPE,
        )
    try:
        statement = json.loads(payload)
        if not isinstance(statement, dict):
            raise TypeError("not an object")
        if not isinstance(statement.get("subject"), list):
            raise TypeError("subject is not a list")
    except (ValueError, TypeError) as e:
        raise SignatureError(f"the signed statement is malformed: {e}") from e
    if statement.get("_type") not in STATEMENT_TYPES:
        raise SignatureError(
            "the signed payload is not an in-toto statement", found=repr(statement.get("_type"))
        )
    return statement


def _require_subject(statement: dict[str, Any], algorithm: str, hex_value: str) -> None:
    subjects = statement["subject"]
    for s in subjects:
        digests = s.get("digest") if isinstance(s, dict) else None
        if isinstance(digests, dict) and digests.get(algorithm) == hex_value:
            return
    named = [
        f"{k}:{v}"
        for s in subjects
        if isinstance(s, dict) and isinstance(s.get("digest"), dict)
        for k, v in s["digest"].items()
    ]
    raise DigestMismatchError(
        "the signed statement is about another artifact",
        found=", ".join(named) or "no subject digest",
        expected=f"{algorithm}:{hex_value}",
        hint="a signature copied from another artifact",
    )


def check_subject(payload_type: str | None, payload: bytes | None, sha256: bytes) -> None:
    """The DSSE payload is an in-toto statement with ``sha256`` among its subjects."""
    _require_subject(_statement(payload_type, payload), "sha256", sha256.hex())


def check_statement(
    payload_type: str | None,
    payload: bytes | None,
    image_digest: str,
    predicate_type: str = COSIGN_SIGN_PREDICATE_TYPE,
) -> dict[str, Any]:
    """The DSSE payload is an in-toto statement about ``image_digest`` of ``predicate_type``."""
    statement = _statement(payload_type, payload)
    if statement.get("predicateType") != predicate_type:
        # A provenance attestation is not an image signature (and vice versa).
        raise SignatureError(
            "the signed statement has another predicate type",
            found=repr(statement.get("predicateType")),
            expected=repr(predicate_type),
        )
    algorithm, _, hex_value = image_digest.partition(":")
    _require_subject(statement, algorithm, hex_value)
    return statement
