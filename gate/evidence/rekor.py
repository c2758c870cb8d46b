"""Rekor evidence for legacy cosign keyless signatures: the SET and the entry body.

Pure: bytes and trust anchors in, no network. What cosign <= 2 stores in the
``dev.sigstore.cosign/bundle`` layer annotation::

    {"SignedEntryTimestamp": b64,
     "Payload": {"body": b64, "integratedTime": int, "logIndex": int, "logID": hex}}

sigstore-python cannot verify this form (it requires an inclusion proof), so
the checks are ours, following cosign ``pkg/cosign/tlog.go`` / ``verify.go``:

1. The SET (signed entry timestamp, Rekor's inclusion promise) is an ECDSA
   signature by the log key over the RFC 8785 canonical JSON of
   ``{body, integratedTime, logID, logIndex}``. The key is the trust root's
   tlog whose log ID equals ``logID`` (a SET from any other log, even a real
   one, proves nothing to us), and that key must be valid at
   ``integratedTime``.
2. The body (a ``hashedrekord`` 0.0.1 entry) must be *this* signature: its
   hash is SHA-256 of this payload, its signature is these bytes and its
   public key / certificate is this signer. Without this check a valid SET of
   any entry would vouch for any signature (CVE-2022-36056 class).
3. ``integratedTime`` is then the trusted signing time: the caller checks that
   the certificate was valid at that moment (``fulcio.verify_certificate``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from gate.errors import VerificationError
from gate.signing.keys import PublicKey
from gate.sources.trustroot import LogKey, TrustRoot

#: Clock skew tolerated for an ``integratedTime`` "in the future" (cosign allows none;
#: a few minutes absorb an unsynchronised runner without opening a real window).
MAX_FUTURE_SKEW = dt.timedelta(minutes=5)
MAX_BODY_BYTES = 1024 * 1024


#: 9999-12-31T23:59:59Z, the last second a datetime can hold.
MAX_INTEGRATED_TIME = 253_402_300_799


class TlogError(VerificationError):
    """The transparency-log evidence does not hold."""

    reason = "tlog-invalid"


@dataclass(frozen=True)
class RekorEntry:
    """A parsed ``dev.sigstore.cosign/bundle`` annotation."""

    signed_entry_timestamp: bytes
    body_b64: str  # exactly as signed in the SET
    integrated_time: int
    log_index: int
    log_id: bytes

    @property
    def body(self) -> bytes:
        return base64.b64decode(self.body_b64)

    @property
    def integrated_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.integrated_time, tz=dt.UTC)

    def canonical(self) -> bytes:
        """What the SET signs: RFC 8785 JSON of the four fields (cosign ``bundle.Payload``)."""
        return rfc8785.dumps(
            {
                "body": self.body_b64,
                "integratedTime": self.integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": self.log_index,
            }
        )


def parse_cosign_bundle(text: str) -> RekorEntry:
    """Parse the ``dev.sigstore.cosign/bundle`` annotation; malformed → ``tlog-invalid``."""
    try:
        doc = json.loads(text)
        payload = doc["Payload"]
        set_b64 = doc["SignedEntryTimestamp"]
        body_b64 = payload["body"]
        integrated = payload["integratedTime"]
        index = payload["logIndex"]
        log_id_hex = payload["logID"]
        if not all(isinstance(v, str) for v in (set_b64, body_b64, log_id_hex)):
            raise TypeError("SignedEntryTimestamp, body and logID must be strings")
        if type(integrated) is not int or type(index) is not int:
            raise TypeError("integratedTime and logIndex must be integers")
        if integrated < 0 or index < 0:
            raise ValueError("integratedTime and logIndex must not be negative")
        # Bounded so that a hostile value cannot crash the date arithmetic later
        # (datetime stops at year 9999; Rekor's indices are int64).
        if integrated > MAX_INTEGRATED_TIME or index >= 1 << 63:
            raise ValueError("integratedTime or logIndex is out of range")
        set_bytes = base64.b64decode(set_b64, validate=True)
        base64.b64decode(body_b64, validate=True)
        log_id = bytes.fromhex(log_id_hex)
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise TlogError(
            "the Rekor bundle annotation is malformed",
            found=f"{type(e).__name__}: {e}",
            expected='{"SignedEntryTimestamp": b64, "Payload": {"body", "integratedTime", '
            '"logIndex", "logID"}}',
        ) from e
    if len(body_b64) > MAX_BODY_BYTES:
        raise TlogError("the Rekor entry body is larger than 1 MiB")
    return RekorEntry(set_bytes, body_b64, integrated, index, log_id)


def verify_log_signature(key: LogKey, signature: bytes, data: bytes) -> bool:
    """A signature by a log key (ECDSA/SHA-256, Ed25519 or RSA PKCS#1 v1.5/SHA-256)."""
    pk = key.public_key
    try:
        if isinstance(pk, ec.EllipticCurvePublicKey):
            pk.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(pk, ed25519.Ed25519PublicKey):
            pk.verify(signature, data)
        elif isinstance(pk, rsa.RSAPublicKey):
            pk.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:  # pragma: no cover - LogPublicKey is closed
            return False
    except InvalidSignature:
        return False
    return True


def verify_set(entry: RekorEntry, root: TrustRoot, now: dt.datetime) -> LogKey:
    """Step 1: the SET is the trust root's log's signature over this entry."""
    key = root.tlog(entry.log_id)
    if key is None:
        # A SET from another log (a private Rekor, staging, a forger's log) is
        # a signature by a key we have no reason to trust.
        raise TlogError(
            "the signed entry timestamp comes from a transparency log the trust root does not list",
            found=f"logID {entry.log_id.hex()}",
            expected="one of " + ", ".join(k.log_id.hex() for k in root.tlogs),
            hint=f"trust root: {root.source}",
        )
    if not verify_log_signature(key, entry.signed_entry_timestamp, entry.canonical()):
        raise TlogError(
            "the signed entry timestamp does not verify with the log key",
            hint="the entry (body, time or index) was changed after the log signed it",
        )
    if not key.validity.contains(entry.integrated_at):
        raise TlogError(
            "the log key was not valid at the entry's integrated time",
            found=entry.integrated_at.isoformat(),
        )
    if entry.integrated_at > now + MAX_FUTURE_SKEW:
        raise TlogError(
            "the entry's integrated time is in the future",
            found=entry.integrated_at.isoformat(),
            expected=f"at most {now.isoformat()}",
        )
    return key


def _spki(key: PublicKey | Any) -> bytes:
    der: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _same_signer(pem: bytes, signer: x509.Certificate | PublicKey) -> bool:
    if b"CERTIFICATE" in pem:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return False
        if isinstance(signer, x509.Certificate):
            return cert.public_bytes(serialization.Encoding.DER) == signer.public_bytes(
                serialization.Encoding.DER
            )
        return False  # a key-based signature cannot be vouched for by a certificate entry
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return False
    if isinstance(signer, x509.Certificate):
        return False  # keyless: the entry must carry the certificate itself
    return _spki(key) == _spki(signer)


def verify_hashedrekord_body(
    body: bytes,
    *,
    digest: bytes,
    signature: bytes,
    signer: x509.Certificate | PublicKey,
) -> None:
    """Step 2: a ``hashedrekord`` 0.0.1 body records this digest, signature and signer."""
    try:
        doc = json.loads(body)
        kind, version = doc["kind"], doc["apiVersion"]
        spec = doc["spec"]
        h = spec["data"]["hash"]
        algorithm, value = h["algorithm"], h["value"]
        sig = spec["signature"]
        content = base64.b64decode(sig["content"], validate=True)
        key_pem = base64.b64decode(sig["publicKey"]["content"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise TlogError(
            "the transparency log entry body is not a hashedrekord entry",
            found=f"{type(e).__name__}: {e}",
        ) from e
    if (kind, version) != ("hashedrekord", "0.0.1"):
        raise TlogError(
            "unsupported transparency log entry kind for a signature",
            found=f"{kind} {version}",
            expected="hashedrekord 0.0.1",
        )
    if algorithm != "sha256" or value != digest.hex():
        raise TlogError(
            "the transparency log entry is for another payload",
            found=f"{algorithm}:{value}",
            expected=f"sha256:{digest.hex()}",
        )
    if content != signature:
        raise TlogError("the transparency log entry records another signature")
    if not _same_signer(key_pem, signer):
        raise TlogError("the transparency log entry records another certificate or key")


def verify_legacy_entry(
    annotation: str,
    root: TrustRoot,
    *,
    payload: bytes,
    signature: bytes,
    signer: x509.Certificate | PublicKey,
    now: dt.datetime,
) -> RekorEntry:
    """Steps 1 and 2 for one ``.sig`` layer; returns the entry (its time is trusted now)."""
    entry = parse_cosign_bundle(annotation)
    verify_set(entry, root, now)
    verify_hashedrekord_body(
        entry.body, digest=hashlib.sha256(payload).digest(), signature=signature, signer=signer
    )
    return entry
