"""gitsign-style keyless Git signatures minted by the private Sigstore authority.

What gitsign writes (sigstore/gitsign ``pkg/git``, ``internal/rekor/oid``): a detached
CMS ``SignedData`` (PEM ``SIGNED MESSAGE``) with one ``SignerInfo`` over the signed
attributes content type, signing time and message digest (SHA-256 of the commit or
tag payload), the Fulcio leaf in ``certificates``, and, in ``rekorMode=offline``, the
Rekor ``TransparencyLogEntry`` (protobuf, body cleared) as the unsigned attribute
``1.3.6.1.4.1.57264.3.1``. The log entry is a ``hashedrekord`` 0.0.1 over
``sha256(DER signed attributes)`` with the CMS signature and the PEM certificate.

The signed objects are written with plain git plumbing (``hash-object`` and
``update-ref``): git's own ``gpg.x509.program`` hook would need a helper binary.

Forgeries (:class:`GitsignForgery`, plus the authority's certificate forgeries):
``online`` (no embedded entry), ``set_signed_by_other_key``,
``entry_for_other_signature``, ``digest_over_other_payload``, ``corrupt_signature``; the
authority's certificate forgeries include the SCT ones (``sct_untrusted_log``,
``sct_over_other_data``).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import rfc8785
from asn1crypto import algos, cms, core
from asn1crypto import x509 as ax509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testkit.gitrepo import AUTHOR_EMAIL, AUTHOR_NAME, GitRepo
from testkit.sigstore_authority import Authority, Forgery, Issued
from testkit.sigstore_certs import GitHubClaims, new_key, utc_now
from testkit.sigstore_log import LogEntry, LogForgery

OID_REKOR_TLOG_ENTRY = "1.3.6.1.4.1.57264.3.1"
ARMOR = "SIGNED MESSAGE"


@dataclass(frozen=True)
class GitsignForgery:
    """One defect in the gitsign material; everything else stays valid."""

    #: gitsign's default ``rekorMode=online``: no embedded log entry at all.
    online: bool = False
    #: The SET is signed by a key that is not the trusted log's.
    set_signed_by_other_key: bool = False
    #: The embedded entry is a genuine entry, but for another signature.
    entry_for_other_signature: bool = False
    #: The signed message digest is of another payload (signature valid over it).
    digest_over_other_payload: bool = False
    #: One byte of the CMS signature flipped.
    corrupt_signature: bool = False
    #: A certificate forgery of the authority (untrusted CA, other identity, times, SCT).
    certificate: Forgery = field(default_factory=Forgery)


GITSIGN_FORGERIES: dict[str, GitsignForgery] = {
    "online-mode": GitsignForgery(online=True),
    "set-signed-by-other-key": GitsignForgery(set_signed_by_other_key=True),
    "entry-for-other-signature": GitsignForgery(entry_for_other_signature=True),
    "digest-over-other-payload": GitsignForgery(digest_over_other_payload=True),
    "corrupt-signature": GitsignForgery(corrupt_signature=True),
    "untrusted-ca": GitsignForgery(certificate=Forgery(untrusted_ca=True)),
    "other-identity": GitsignForgery(
        certificate=Forgery(other_identity="https://github.com/evil/app/.github/workflows/x.yml")
    ),
    "other-issuer": GitsignForgery(certificate=Forgery(other_issuer="https://issuer.evil.example")),
    "expired-certificate": GitsignForgery(certificate=Forgery(expired_certificate=True)),
    "integrated-outside-validity": GitsignForgery(
        certificate=Forgery(integrated_outside_validity=True)
    ),
    "sct-untrusted-log": GitsignForgery(certificate=Forgery(sct_untrusted_log=True)),
    "sct-over-other-data": GitsignForgery(certificate=Forgery(sct_over_other_data=True)),
}


# -- protobuf (TransparencyLogEntry, the fields gitsign fills) -----------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def tlog_entry_protobuf(entry: LogEntry, *, with_body: bool = False) -> bytes:
    """``dev.sigstore.rekor.v1.TransparencyLogEntry`` as gitsign embeds it (body cleared)."""
    proof = (
        _field(1, entry.log_index)
        + _field(2, entry.root_hash)
        + _field(3, entry.tree_size)
        + b"".join(_field(4, h) for h in entry.hashes)
        + _field(5, _field(1, entry.checkpoint.encode()))
    )
    out = (
        _field(1, entry.log_index)
        + _field(2, _field(1, entry.log_id))
        + _field(3, _field(1, entry.kind.encode()) + _field(2, entry.version.encode()))
        + _field(4, entry.integrated_time)
        + _field(5, _field(1, entry.signed_entry_timestamp))
        + _field(6, proof)
    )
    if with_body:
        out += _field(7, entry.body)
    return out


# -- CMS -------------------------------------------------------------------------


def _signed_attributes(digest: bytes, signing_time: datetime) -> cms.CMSAttributes:
    attrs = [
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute(
            {"type": "signing_time", "values": [cms.Time({"utc_time": signing_time})]}
        ),
        cms.CMSAttribute({"type": "message_digest", "values": [digest]}),
    ]
    # DER orders a SET OF by the encodings of its elements.
    attrs.sort(key=lambda a: a.dump())
    return cms.CMSAttributes(attrs)


def hashedrekord_body(signed_attrs_der: bytes, signature: bytes, issued: Issued) -> bytes:
    pem = issued.certificate.public_bytes(serialization.Encoding.PEM)
    digest = hashlib.sha256(signed_attrs_der).hexdigest()
    body: dict[str, Any] = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }
    return bytes(rfc8785.dumps(body))


def armor(der: bytes) -> bytes:
    text = base64.b64encode(der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return (f"-----BEGIN {ARMOR}-----\n" + "\n".join(lines) + f"\n-----END {ARMOR}-----\n").encode()


@dataclass
class KeylessGitSigner:
    """Signs Git payloads the way gitsign does, as ``identity`` from ``issuer``."""

    authority: Authority
    identity: str
    issuer: str
    github: GitHubClaims | None = None
    forgery: GitsignForgery = field(default_factory=GitsignForgery)
    validity: timedelta = timedelta(minutes=10)
    #: The last minted signature's log entry (for tests that inspect it).
    last_entry: LogEntry | None = None

    def _times(self) -> tuple[datetime, int]:
        now = utc_now().replace(microsecond=0)
        not_before, integrated = now, now
        if self.forgery.certificate.expired_certificate:
            not_before = now - self.validity - timedelta(minutes=5)
        if self.forgery.certificate.integrated_outside_validity:
            integrated = not_before - timedelta(hours=1)
        return not_before, int(integrated.timestamp())

    def sign(self, payload: bytes) -> bytes:
        """The armored CMS signature over ``payload`` (a commit or tag without signature)."""
        f = self.forgery
        not_before, integrated = self._times()
        cert_forgery = Forgery(
            other_identity=f.certificate.other_identity,
            other_issuer=f.certificate.other_issuer,
            untrusted_ca=f.certificate.untrusted_ca,
            sct_untrusted_log=f.certificate.sct_untrusted_log,
            sct_over_other_data=f.certificate.sct_over_other_data,
        )
        issued = self.authority.issue_certificate(
            self.identity,
            self.issuer,
            github=self.github,
            not_before=not_before,
            validity=self.validity,
            forgery=cert_forgery,
        )
        signed_over = payload + b"tampered" if f.digest_over_other_payload else payload
        attrs = _signed_attributes(hashlib.sha256(signed_over).digest(), not_before)
        attrs_der = attrs.dump()  # the SET OF (0x31) is what is signed
        key = issued.private_key
        signature = key.sign(attrs_der, ec.ECDSA(hashes.SHA256()))
        logged_signature = signature
        if f.entry_for_other_signature:
            logged_signature = key.sign(attrs_der + b"x", ec.ECDSA(hashes.SHA256()))
        if f.corrupt_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 1])
        unsigned: list[cms.CMSAttribute] = []
        if not f.online:
            body = hashedrekord_body(attrs_der, logged_signature, issued)
            log_forgery = LogForgery(set_key=new_key("p256") if f.set_signed_by_other_key else None)
            entry = self.authority.rekor.append(
                "hashedrekord", "0.0.1", body, integrated, log_forgery
            )
            self.last_entry = entry
            value = core.OctetString(tlog_entry_protobuf(entry))
            unsigned.append(
                cms.CMSAttribute(
                    {"type": OID_REKOR_TLOG_ENTRY, "values": [core.Any.load(value.dump())]}
                )
            )
        cert = ax509.Certificate.load(issued.certificate.public_bytes(serialization.Encoding.DER))
        signer_info: dict[str, Any] = {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {
                    "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                        {"issuer": cert.issuer, "serial_number": cert.serial_number}
                    )
                }
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
        if unsigned:
            signer_info["unsigned_attrs"] = cms.CMSAttributes(unsigned)
        signed_data = cms.SignedData(
            {
                "version": "v1",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {"content_type": "data"},
                "certificates": [cert],
                "signer_infos": [cms.SignerInfo(signer_info)],
            }
        )
        info = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        return armor(info.dump())


# -- writing signed objects ----------------------------------------------------------


def _header_block(name: str, signature: bytes) -> bytes:
    lines = signature.rstrip(b"\n").split(b"\n")
    return name.encode() + b" " + b"\n ".join(lines) + b"\n"


def sign_head_commit(repo: GitRepo, signer: KeylessGitSigner) -> str:
    """Replace HEAD's (unsigned) commit by the same commit with a gitsign signature."""
    head = repo.head()
    raw = repo.cat_file(head)
    end = raw.index(b"\n\n")
    header = "gpgsig-sha256" if repo.object_format == "sha256" else "gpgsig"
    signed = raw[: end + 1] + _header_block(header, signer.sign(raw)) + raw[end + 1 :]
    oid = repo.write_object("commit", signed)
    repo.git("update-ref", "HEAD", oid)
    return oid


def keyless_tag(
    repo: GitRepo,
    name: str,
    signer: KeylessGitSigner,
    *,
    target: str = "HEAD",
    object_name: str | None = None,
) -> str:
    """An annotated tag signed like ``gitsign`` (``object_name`` forges the tag field)."""
    commit = repo.rev_parse(f"{target}^{{commit}}")
    when = int(utc_now().timestamp())
    payload = (
        f"object {commit}\ntype commit\ntag {object_name or name}\n"
        f"tagger {AUTHOR_NAME} <{AUTHOR_EMAIL}> {when} +0000\n\nRelease {name}\n"
    ).encode()
    oid = repo.write_object("tag", payload + signer.sign(payload))
    repo.update_ref(f"refs/tags/{name}", oid)
    return oid
