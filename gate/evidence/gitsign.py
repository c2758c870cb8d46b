"""Keyless Git signatures (gitsign): CMS SignedData with a Fulcio certificate, offline.

What gitsign writes (``-----BEGIN SIGNED MESSAGE-----``, checked against
sigstore/gitsign ``pkg/git``, ``internal/rekor/oid`` and the ietf-cms fork): a
detached CMS ``SignedData`` with one ``SignerInfo`` whose signed attributes are the
content type, the message digest (SHA-256 of the commit or tag payload) and a
signing time chosen by the signer; the signature covers the DER ``SET OF`` those
attributes. The certificate is a short-lived Fulcio leaf. In ``rekorMode=offline``
the Rekor entry for a ``hashedrekord`` over ``sha256(DER signed attributes)`` rides
along as an unsigned attribute, OID ``1.3.6.1.4.1.57264.3.1``, an OCTET STRING
holding a protobuf ``TransparencyLogEntry`` whose body gitsign clears (the
verifier rebuilds it from the signature, which binds the entry to THIS signature).

This module owns only what is specific to gitsign: the CMS, the protobuf entry, the
rebuilt ``hashedrekord`` body and the identity match over several policy keys. The
trust root, the certificate and the SET are checked by the modules the image
verifiers use (:mod:`gate.sources.trustroot`, :mod:`gate.evidence.fulcio`,
:mod:`gate.evidence.rekor`), so the whole gate has one trust-root parser and one
Fulcio/Rekor verification.

What we check, in order, each failure with its own reason:
1. the CMS parses, is detached, has exactly one signer whose certificate it carries;
2. message digest = sha256(payload), and the signature verifies over the signed
   attributes (``bad-signature``);
3. the embedded log entry exists (``tlog-entry-missing``: gitsign's default online
   mode can only be checked by querying Rekor, which an offline gate cannot do), is a
   ``hashedrekord`` 0.0.1 and (if it carries a body) is this signature's
   (``tlog-invalid``);
4. at the entry's integrated time (``fulcio.verify_certificate``): the certificate was
   valid (``key-expired``: the signing time attribute is the signer's claim, the log's
   time is not), chains to a certificate authority of the trust root valid then and is
   a code-signing leaf (``untrusted-signer``: an attacker can mint a look-alike Fulcio
   CA, not one in our root), and its embedded SCT verifies under a CT log key of the
   trust root (``sct-invalid``);
5. the SET verifies under the trust root's Rekor key for the entry's log id, valid at
   the integrated time (``rekor.verify_set``, ``tlog-invalid``): only now is that time
   trusted, so nothing is accepted unless both 4 and 5 hold;
6. the identity (issuer exact, subject anchored glob) is one the policy trusts
   (``untrusted-signer``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785
from asn1crypto import cms as asn1_cms  # type: ignore[import-untyped]
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from gate.errors import IdentityError, SignatureError, VerificationError
from gate.evidence import fulcio, rekor
from gate.evidence.identity import check_identity, read_identity
from gate.evidence.rekor import TlogError
from gate.evidence.sigtools import KeyExpiredError, UntrustedSignerError
from gate.policy.model import KeylessIdentity
from gate.sources.trustroot import TrustRoot

OID_REKOR_TLOG_ENTRY = "1.3.6.1.4.1.57264.3.1"
MAX_SIGNATURE_BYTES = 64 * 1024
#: ``integratedTime`` and ``logIndex`` are signed as JSON numbers (RFC 8785): beyond
#: 2**53 they have no canonical form, and a time past year 9999 is no time at all.
_MAX_LOG_INDEX = 2**53 - 1
_MAX_INTEGRATED_TIME = 253402300799  # 9999-12-31T23:59:59Z
_ARMOR = re.compile(
    rb"-----BEGIN SIGNED MESSAGE-----\n([A-Za-z0-9+/=\n]+)-----END SIGNED MESSAGE-----\n?\Z"
)


class TlogMissingError(VerificationError):
    reason = "tlog-entry-missing"


# -- protobuf (the few fields of TransparencyLogEntry we need) ---------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, pos


def _pb_fields(data: bytes) -> dict[int, list[int | bytes]]:
    """Decode one protobuf message level: field number -> values (varints or bytes)."""
    out: dict[int, list[int | bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            n, pos = _varint(data, pos)
            if pos + n > len(data):
                raise ValueError("truncated length-delimited field")
            value, pos = data[pos : pos + n], pos + n
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(data):
                raise ValueError("truncated fixed field")
            value, pos = data[pos : pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _one(fields: Mapping[int, list[int | bytes]], n: int, kind: type, default: Any) -> Any:
    values = fields.get(n, [])
    if len(values) > 1:
        raise ValueError(f"field {n} repeated")
    if not values:
        return default
    if not isinstance(values[0], kind):
        raise ValueError(f"field {n} has the wrong wire type")
    return values[0]


@dataclass(frozen=True)
class TlogEntry:
    log_index: int
    log_id: bytes
    kind: str
    version: str
    integrated_time: int
    signed_entry_timestamp: bytes
    canonicalized_body: bytes


def parse_tlog_entry(data: bytes) -> TlogEntry:
    """Decode a protobuf ``dev.sigstore.rekor.v1.TransparencyLogEntry``."""
    try:
        top = _pb_fields(data)
        log_id = _pb_fields(_one(top, 2, bytes, b""))
        kind = _pb_fields(_one(top, 3, bytes, b""))
        promise = _pb_fields(_one(top, 5, bytes, b""))
        entry = TlogEntry(
            log_index=_one(top, 1, int, 0),
            log_id=_one(log_id, 1, bytes, b""),
            kind=_one(kind, 1, bytes, b"").decode(),
            version=_one(kind, 2, bytes, b"").decode(),
            integrated_time=_one(top, 4, int, 0),
            signed_entry_timestamp=_one(promise, 1, bytes, b""),
            canonicalized_body=_one(top, 7, bytes, b""),
        )
        # Varints are unsigned here: a negative int64 arrives as a huge number.
        if entry.log_index > _MAX_LOG_INDEX:
            raise ValueError(f"logIndex {entry.log_index} is out of range")
        if entry.integrated_time > _MAX_INTEGRATED_TIME:
            raise ValueError(f"integratedTime {entry.integrated_time} is out of range")
        return entry
    except (ValueError, UnicodeDecodeError) as e:
        raise TlogError(f"the embedded Rekor entry does not parse: {e}") from e


# -- CMS --------------------------------------------------------------------------


@dataclass(frozen=True)
class CmsSignature:
    certificate: x509.Certificate
    signed_attrs_der: bytes  # the DER SET OF, as signed
    message_digest: bytes
    signature: bytes
    tlog_entry: bytes | None


def _attr(attrs: Any, name: str) -> Any:
    found = [a for a in attrs if a["type"].native == name]
    if len(found) != 1 or len(found[0]["values"]) != 1:
        raise SignatureError(f"the CMS signature needs exactly one {name} attribute")
    return found[0]["values"][0]


def parse_cms(armored: bytes) -> CmsSignature:
    """Parse a gitsign signature; anything unexpected is ``bad-signature``."""
    if len(armored) > MAX_SIGNATURE_BYTES:
        raise SignatureError("the keyless signature is too large")
    m = _ARMOR.match(armored)
    if m is None:
        raise SignatureError("the keyless signature is not a well-formed SIGNED MESSAGE block")
    try:
        der = base64.b64decode(m.group(1).replace(b"\n", b""), validate=True)
        info = asn1_cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise SignatureError("the CMS object is not SignedData")
        sd = info["content"]
        if sd["encap_content_info"]["content"].native is not None:
            # An attached signature carries its own content: it would prove that
            # content, not the commit it sits in.
            raise SignatureError("the CMS signature is not detached")
        signers = list(sd["signer_infos"])
        if len(signers) != 1:
            raise SignatureError(f"the CMS signature has {len(signers)} signers, expected one")
        si = signers[0]
        if si["digest_algorithm"]["algorithm"].native != "sha256":
            raise SignatureError(
                "the CMS signature uses an unsupported digest",
                found=str(si["digest_algorithm"]["algorithm"].native),
                expected="sha256",
            )
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            raise SignatureError("the CMS signer is not named by issuer and serial number")
        issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
        leaf = None
        for choice in sd["certificates"] or []:
            if choice.name != "certificate":
                continue
            c = choice.chosen
            if c.issuer == issuer and c.serial_number == serial:
                leaf = x509.load_der_x509_certificate(c.dump())
        if leaf is None:
            raise SignatureError("the CMS signature does not carry its signer's certificate")
        signed_attrs = si["signed_attrs"]
        if signed_attrs.native is None:
            raise SignatureError("the CMS signature has no signed attributes")
        if _attr(signed_attrs, "content_type").native != "data":
            raise SignatureError("the CMS signed content type is not id-data")
        digest = _attr(signed_attrs, "message_digest").native
        raw_attrs = signed_attrs.dump()
        # Signed over the EXPLICIT SET OF (tag 0x31), not the [0] IMPLICIT wrapper.
        attrs_der = b"\x31" + raw_attrs[1:]
        entry: bytes | None = None
        unsigned = si["unsigned_attrs"]
        if unsigned.native is not None:
            hits = [a for a in unsigned if a["type"].dotted == OID_REKOR_TLOG_ENTRY]
            if len(hits) > 1 or (hits and len(hits[0]["values"]) != 1):
                raise TlogError("the CMS signature carries more than one Rekor entry")
            if hits:
                value = hits[0]["values"][0]
                entry = asn1_core.OctetString.load(value.dump(), strict=True).native
        return CmsSignature(leaf, attrs_der, bytes(digest), bytes(si["signature"].native), entry)
    except VerificationError:
        raise
    except (ValueError, TypeError, KeyError, binascii.Error) as e:
        raise SignatureError(f"the keyless (CMS) signature does not parse: {e}") from e


# -- verification -----------------------------------------------------------------


@dataclass(frozen=True)
class KeylessVerified:
    identity: str  # "<issuer> <subject>": the physical signer, for threshold counting
    subject: str
    issuer: str
    key_names: frozenset[str]
    integrated_time: dt.datetime


def _verify_cms_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> bool:
    key = cert.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _hashedrekord_body(cms: CmsSignature) -> bytes:
    """Rebuild the canonical hashedrekord 0.0.1 body gitsign logged (and then cleared)."""
    pem = cms.certificate.public_bytes(serialization.Encoding.PEM)
    body: dict[str, Any] = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {
                "hash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(cms.signed_attrs_der).hexdigest(),
                }
            },
            "signature": {
                "content": base64.b64encode(cms.signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }
    return bytes(rfc8785.dumps(body))


def _embedded_entry(cms: CmsSignature) -> rekor.RekorEntry:
    """Step 3: the embedded entry, with the body rebuilt from THIS signature."""
    if cms.tlog_entry is None:
        raise TlogMissingError(
            "the keyless signature carries no Rekor entry, so it cannot be verified offline",
            found="no 1.3.6.1.4.1.57264.3.1 attribute (gitsign's default rekorMode=online)",
            expected="an embedded transparency-log entry (rekorMode=offline)",
            hint="sign with `git config gitsign.rekorMode offline`; an online lookup would "
            "make the gate depend on Rekor being reachable at sync time",
        )
    entry = parse_tlog_entry(cms.tlog_entry)
    if (entry.kind, entry.version) != ("hashedrekord", "0.0.1"):
        raise TlogError(
            "the embedded Rekor entry has an unexpected kind",
            found=f"{entry.kind} {entry.version}",
            expected="hashedrekord 0.0.1",
        )
    body = _hashedrekord_body(cms)
    # gitsign clears the body; if one is present it must be this signature's.
    if entry.canonicalized_body and entry.canonicalized_body != body:
        raise TlogError("the embedded Rekor entry is for another signature")
    return rekor.RekorEntry(
        signed_entry_timestamp=entry.signed_entry_timestamp,
        body_b64=base64.b64encode(body).decode(),
        integrated_time=entry.integrated_time,
        log_index=entry.log_index,
        log_id=entry.log_id,
    )


def _verify_certificate(cert: x509.Certificate, root: TrustRoot, at: dt.datetime) -> None:
    """Step 4, with the Git reason for a certificate not valid at the log's time."""
    try:
        fulcio.verify_certificate(cert, root, at)
    except fulcio.CertificateExpiredError as e:
        raise KeyExpiredError(
            "the keyless certificate was not valid when the log recorded the signature",
            found=e.found,
            expected=e.expected,
            hint=e.hint,
        ) from e


def verify_keyless(
    payload: bytes,
    armored: bytes,
    root: TrustRoot,
    identities: Mapping[str, KeylessIdentity],
    now: dt.datetime,
) -> KeylessVerified:
    """Verify a gitsign signature over ``payload``; raise with the reason, or return who.

    ``now`` bounds the log's integrated time (an entry from the future is refused).
    """
    cms = parse_cms(armored)
    if cms.message_digest != hashlib.sha256(payload).digest():
        raise SignatureError(
            "the keyless signature is over other content (message digest mismatch)",
            found=cms.message_digest.hex(),
            expected=hashlib.sha256(payload).hexdigest(),
        )
    if not _verify_cms_signature(cms.certificate, cms.signature, cms.signed_attrs_der):
        raise SignatureError("the keyless signature does not verify with its certificate")
    entry = _embedded_entry(cms)
    # The certificate is judged at the entry's time before the SET authenticates that
    # time: a certificate from another Sigstore instance is reported as an untrusted
    # signer, not as a log problem. Both must hold before anything is accepted.
    _verify_certificate(cms.certificate, root, entry.integrated_at)
    rekor.verify_set(entry, root, now)
    ident = read_identity(cms.certificate)
    names: set[str] = set()
    for name, expected in identities.items():
        try:
            check_identity(ident, expected)
        except IdentityError:
            continue
        names.add(name)
    if not names:
        raise UntrustedSignerError(
            "the keyless signer's identity is not trusted by the policy",
            found=f"{ident.subject or '(no subject)'} from {ident.issuer or '(no issuer)'}",
            expected=_describe(identities),
            hint="sign from an identity listed in spec.source.git.signers",
        )
    return KeylessVerified(
        f"{ident.issuer} {ident.subject}",
        ident.subject,
        ident.issuer or "",
        frozenset(names),
        entry.integrated_at,
    )


def _describe(identities: Mapping[str, KeylessIdentity]) -> str:
    parts: Sequence[str] = [
        f"{n}: {i.subject or '/' + (i.subject_regexp or '') + '/'} from {i.issuer}"
        for n, i in sorted(identities.items())
    ]
    return "; ".join(parts) or "no keyless signer in the policy"
