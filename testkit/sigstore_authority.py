"""A private Sigstore authority for tests and the demo: Fulcio, CT log and Rekor in one object.

It mints what the public-good instance would hand a signer, against a throwaway trust
root written as ``trusted_root.json``
(``application/vnd.dev.sigstore.trustedroot+json;version=0.1``), so that the real
``sigstore.verify.Verifier(trusted_root=TrustedRoot.from_file(p))`` accepts it:

- short-lived code-signing certificates with the Fulcio extensions (issuer ``.1``/``.8``,
  GitHub workflow claims ``.9``-``.22``) and a real embedded SCT (RFC 6962);
- Sigstore bundles v0.3 (``messageSignature`` + ``hashedrekord`` 0.0.1, or
  ``dsseEnvelope`` + ``dsse`` 0.0.1) whose tlog entry has a SET (RFC 8785 canonical JSON),
  an RFC 6962 inclusion proof from a real append-only tree and a signed checkpoint;
- the legacy cosign <= 2 ``.sig`` layer annotations (signature, certificate, chain,
  ``dev.sigstore.cosign/bundle``);
- on request, the same material deliberately wrong in exactly one way (:class:`Forgery`),
  for the negative tests of every verifier.

Usage::

    authority = Authority.create(tmp_path)              # or the ``sigstore_authority`` fixture
    bundle = authority.sign_blob(data, identity=EMAIL, issuer=ISSUER)
    Verifier(trusted_root=TrustedRoot.from_file(str(authority.trusted_root_path)))
        .verify_artifact(data, Bundle.from_json(json.dumps(bundle)), policy.Identity(...))
    bad = authority.sign_blob(data, identity=EMAIL, issuer=ISSUER,
                              forgery=FORGERIES["untrusted-ca"])

Test-only: the gate never mints keyless material.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from testkit.sigstore_certs import (
    CertificateAuthority,
    CTLog,
    GitHubClaims,
    KeyType,
    LeafRequest,
    SctOptions,
    issue_leaf,
    new_key,
    pem,
    spki_der,
    utc_now,
)
from testkit.sigstore_log import LogEntry, LogForgery, TransparencyLog, b64
from testkit.sigstore_tsa import TimestampAuthority

__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "FORGERIES",
    "TRUSTED_ROOT_MEDIA_TYPE",
    "TSA_FORGERIES",
    "Authority",
    "Forgery",
    "GitHubClaims",
    "Issued",
    "LegacyKeylessSignature",
    "pae",
]

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
#: Number of unrelated entries the log holds before the first real one, so that even the
#: first bundle has ``logIndex > 0`` and a non-empty audit path.
PREFILL_ENTRIES = 5


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: ``"DSSEv1" SP len(type) SP type SP len(body) SP
    body`` (secure-systems-lab/dsse ``protocol.md``); what a DSSE signature covers."""
    head = f"DSSEv1 {len(payload_type)} {payload_type} {len(payload)} ".encode()
    return head + payload


def _sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA with SHA-256 whatever the curve: sigstore-python prehashes with SHA-256."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass(frozen=True)
class Forgery:
    """One deliberate defect; every other part of the minted material stays valid.

    The real verifier must reject each one (``tests/testkit/test_sigstore_authority.py``
    proves it does, one test per flag).
    """

    #: Certificate validity entirely in the past: the entry is integrated after notAfter.
    expired_certificate: bool = False
    #: Certificate valid now, entry integrated (and SET-signed) an hour before notBefore.
    integrated_outside_validity: bool = False
    #: SET signed by a key the trust root does not list.
    set_signed_by_other_key: bool = False
    #: Checkpoint signed by a key the trust root does not list.
    checkpoint_signed_by_other_key: bool = False
    #: Audit path (or root, for a one-leaf tree) corrupted: the proof misses the signed root.
    inclusion_proof_mismatch: bool = False
    #: SCT signed by a CT log whose key the trust root does not list.
    sct_untrusted_log: bool = False
    #: SCT signed by the trusted CT log, but over another precertificate.
    sct_over_other_data: bool = False
    #: Certificate issued to this identity instead of the one asked for.
    other_identity: str | None = None
    #: Certificate names this OIDC issuer instead of the one asked for.
    other_issuer: str | None = None
    #: Certificate chains to a CA with the same names as the trusted one but other keys.
    untrusted_ca: bool = False
    #: RFC 3161 timestamp (trusted TSA) an hour after the certificate expired; the log's
    #: time stays valid. Needs ``with_tsa``; implies ``timestamp=True``.
    timestamp_outside_validity: bool = False

    @property
    def affects_certificate(self) -> bool:
        """Whether the defect is in the certificate (so it cannot reuse an ``Issued``)."""
        return any(
            (
                self.expired_certificate,
                self.integrated_outside_validity,
                self.sct_untrusted_log,
                self.sct_over_other_data,
                self.other_identity,
                self.other_issuer,
                self.untrusted_ca,
            )
        )


NO_FORGERY = Forgery()

#: Every forgery by name, for parametrised negative tests of any verifier (the TSA one is
#: separate: it needs ``Authority.create(..., with_tsa=True)``).
FORGERIES: dict[str, Forgery] = {
    "expired-certificate": Forgery(expired_certificate=True),
    "integrated-outside-validity": Forgery(integrated_outside_validity=True),
    "set-signed-by-other-key": Forgery(set_signed_by_other_key=True),
    "checkpoint-signed-by-other-key": Forgery(checkpoint_signed_by_other_key=True),
    "inclusion-proof-mismatch": Forgery(inclusion_proof_mismatch=True),
    "sct-untrusted-log": Forgery(sct_untrusted_log=True),
    "sct-over-other-data": Forgery(sct_over_other_data=True),
    "other-identity": Forgery(
        other_identity="https://github.com/evil/app/.github/workflows/x.yml@refs/heads/main"
    ),
    "other-issuer": Forgery(other_issuer="https://issuer.evil.example"),
    "untrusted-ca": Forgery(untrusted_ca=True),
}
TSA_FORGERIES: dict[str, Forgery] = {
    "timestamp-outside-validity": Forgery(timestamp_outside_validity=True),
}


@dataclass(frozen=True)
class Issued:
    """A Fulcio answer: the ephemeral key, the leaf and its issuer chain (nearest first)."""

    private_key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate_pem(self) -> str:
        """The leaf as PEM."""
        return pem(self.certificate)

    @property
    def chain_pem(self) -> str:
        """The chain as concatenated PEM (cosign's ``dev.sigstore.cosign/chain``)."""
        return "".join(pem(c) for c in self.chain)


@dataclass(frozen=True)
class LegacyKeylessSignature:
    """What cosign <= 2 writes for one keyless signature in the ``.sig``/``.att`` image.

    ``payload`` is the layer blob; ``signature`` is raw DER (over ``payload`` for a
    simplesigning layer, over the DSSE PAE for an attestation layer).
    """

    payload: bytes
    media_type: str
    signature: bytes
    issued: Issued
    entry: LogEntry
    predicate_type: str | None = None

    @property
    def signature_b64(self) -> str:
        """``dev.cosignproject.cosign/signature`` (empty for attestations, as cosign)."""
        return "" if self.media_type == DSSE_MEDIA_TYPE else b64(self.signature)

    @property
    def certificate_pem(self) -> str:
        """``dev.sigstore.cosign/certificate``."""
        return self.issued.certificate_pem

    @property
    def chain_pem(self) -> str:
        """``dev.sigstore.cosign/chain``."""
        return self.issued.chain_pem

    @property
    def bundle(self) -> dict[str, Any]:
        """The ``dev.sigstore.cosign/bundle`` object (SET + payload)."""
        return self.entry.to_cosign_bundle()

    def annotations(self) -> dict[str, str]:
        """The layer annotations, ready for an OCI manifest."""
        out = {
            "dev.cosignproject.cosign/signature": self.signature_b64,
            "dev.sigstore.cosign/certificate": self.certificate_pem,
            "dev.sigstore.cosign/chain": self.chain_pem,
            "dev.sigstore.cosign/bundle": json.dumps(self.bundle, separators=(",", ":")),
        }
        if self.predicate_type is not None:
            out["predicateType"] = self.predicate_type
        return out


@dataclass(frozen=True)
class _Rogue:
    """Keys and a CA that look like the authority's but are not in its trust root."""

    ca: CertificateAuthority
    ct_log: CTLog
    log_key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class _Plan:
    """Times of one signing: certificate validity and the log's integrated time."""

    not_before: datetime
    not_after: datetime
    integrated_time: int


@dataclass
class Authority:
    """A throwaway Fulcio + CT log + Rekor (+ optional RFC 3161 TSA) and its trust root."""

    directory: Path
    ca: CertificateAuthority
    ct_log: CTLog
    rekor: TransparencyLog
    created: datetime
    tsa: TimestampAuthority | None = None
    trusted_root_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.trusted_root_path = self.directory / "trusted_root.json"

    @classmethod
    def create(cls, directory: Path, *, with_tsa: bool = False) -> Authority:
        """Mint every key and certificate, prefill the log, write ``trusted_root.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        created = utc_now() - timedelta(days=1)
        tsa = TimestampAuthority.create(not_before=created) if with_tsa else None
        authority = cls(
            directory=directory,
            ca=CertificateAuthority.create(not_before=created),
            ct_log=CTLog.create(),
            rekor=TransparencyLog.create(),
            created=created,
            tsa=tsa,
        )
        for n in range(PREFILL_ENTRIES):
            authority.rekor.append("filler", "0.0.0", f"filler {n}".encode(), 0)
        authority.trusted_root_path.write_text(json.dumps(authority.trusted_root(), indent=2))
        return authority

    # -- trust material -------------------------------------------------------------

    @property
    def root_certificate(self) -> x509.Certificate:
        """The Fulcio-like root (self-signed, P-384)."""
        return self.ca.root

    @property
    def intermediate_certificate(self) -> x509.Certificate:
        """The intermediate that issues leaves."""
        return self.ca.intermediate

    @property
    def rekor_public_key(self) -> ec.EllipticCurvePublicKey:
        """The Rekor log key (verifies SETs and checkpoints)."""
        return self.rekor.public_key

    @property
    def rekor_log_id(self) -> bytes:
        """SHA-256 of the Rekor key's SPKI (``logID`` in hex in cosign's bundle)."""
        return self.rekor.log_id

    @property
    def ct_public_key(self) -> ec.EllipticCurvePublicKey:
        """The CT log key (verifies SCTs)."""
        return self.ct_log.key.public_key()

    @property
    def ct_log_id(self) -> bytes:
        """SHA-256 of the CT key's SPKI (the SCT ``LogID``)."""
        return self.ct_log.log_id

    @staticmethod
    def public_key_pem(key: ec.EllipticCurvePublicKey) -> str:
        """PEM ``PUBLIC KEY`` (PKIX), the form cosign's ``--rekor-key``-style flags take."""
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def trusted_root(self) -> dict[str, Any]:
        """The ``TrustedRoot`` message (sigstore protobuf-specs), JSON mapping."""
        start = {"start": self.created.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(url: str, key: ec.EllipticCurvePrivateKey, log_id: bytes) -> dict[str, Any]:
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(spki_der(key)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": start,
                },
                "logId": {"keyId": b64(log_id)},
            }

        root: dict[str, Any] = {
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": [log("https://rekor.sigstore.test", self.rekor.key, self.rekor.log_id)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "sigstore.test", "commonName": "fulcio-root"},
                    "uri": "https://fulcio.sigstore.test",
                    "certChain": {
                        "certificates": [{"rawBytes": b64(_der(c))} for c in self.ca.chain]
                    },
                    "validFor": start,
                }
            ],
            "ctlogs": [log("https://ctfe.sigstore.test", self.ct_log.key, self.ct_log.log_id)],
            "timestampAuthorities": [],
        }
        if self.tsa is not None:
            root["timestampAuthorities"].append(self.tsa.trusted_root_entry(start))
        return root

    @cached_property
    def _rogue(self) -> _Rogue:
        return _Rogue(
            ca=CertificateAuthority.create(not_before=self.created),
            ct_log=CTLog.create(),
            log_key=new_key("p256"),
        )

    # -- Fulcio ---------------------------------------------------------------------

    def issue_certificate(
        self,
        identity: str,
        issuer: str,
        *,
        github: GitHubClaims | None = None,
        email: bool = False,
        not_before: datetime | None = None,
        validity: timedelta = timedelta(minutes=10),
        key_type: KeyType = "p256",
        forgery: Forgery = NO_FORGERY,
    ) -> Issued:
        """A Fulcio-style leaf for ``identity`` (SAN email if it has an ``@`` or ``email``,
        else URI) issued by ``issuer``, with an embedded SCT.

        ``forgery`` applies only its certificate defects (``other_identity``,
        ``other_issuer``, ``untrusted_ca``, ``sct_*``).
        """
        not_before = not_before or utc_now()
        key = new_key(key_type)
        request = LeafRequest(
            identity=forgery.other_identity or identity,
            issuer=forgery.other_issuer or issuer,
            not_before=not_before,
            not_after=not_before + validity,
            public_key=key.public_key(),
            email=email,
            github=github,
        )
        ca = self._rogue.ca if forgery.untrusted_ca else self.ca
        ct_log = self._rogue.ct_log if forgery.sct_untrusted_log else self.ct_log
        leaf = issue_leaf(
            request, ca, SctOptions(ct_log, over_other_data=forgery.sct_over_other_data)
        )
        return Issued(private_key=key, certificate=leaf, chain=ca.chain)

    # -- signing and logging --------------------------------------------------------

    def _plan(self, at: datetime | None, validity: timedelta, forgery: Forgery) -> _Plan:
        """Fulcio issues at signing time and Rekor integrates right after; the time
        forgeries move one of the two out of the other's window."""
        now = (at or utc_now()).replace(microsecond=0)
        not_before = now
        integrated = now
        if forgery.expired_certificate:
            not_before = now - validity - timedelta(minutes=5)
        if forgery.integrated_outside_validity:
            integrated = not_before - timedelta(hours=1)
        return _Plan(not_before, not_before + validity, int(integrated.timestamp()))

    def _issue_for(
        self,
        identity: str,
        issuer: str,
        plan: _Plan,
        options: _SignOptions,
    ) -> Issued:
        if options.issued is not None:
            if options.forgery.affects_certificate:
                raise TypeError("certificate forgeries need a fresh certificate, not issued=")
            return options.issued
        return self.issue_certificate(
            identity,
            issuer,
            github=options.github,
            email=options.email,
            not_before=plan.not_before,
            validity=plan.not_after - plan.not_before,
            key_type=options.key_type,
            forgery=options.forgery,
        )

    def _log(self, kind: str, body: dict[str, Any], plan: _Plan, forgery: Forgery) -> LogEntry:
        log_forgery = LogForgery(
            set_key=self._rogue.log_key if forgery.set_signed_by_other_key else None,
            checkpoint_key=self._rogue.log_key if forgery.checkpoint_signed_by_other_key else None,
            break_inclusion_proof=forgery.inclusion_proof_mismatch,
        )
        return self.rekor.append(
            kind, body["apiVersion"], rfc8785.dumps(body), plan.integrated_time, log_forgery
        )

    def _log_hashedrekord(
        self, digest: bytes, signature: bytes, issued: Issued, plan: _Plan, forgery: Forgery
    ) -> LogEntry:
        """Rekor ``hashedrekord`` 0.0.1: digest, signature and the PEM cert, base64."""
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
                "signature": {
                    "content": b64(signature),
                    "publicKey": {"content": b64(issued.certificate_pem.encode())},
                },
            },
        }
        return self._log("hashedrekord", body, plan, forgery)

    def _log_dsse(
        self,
        envelope: dict[str, Any],
        payload: bytes,
        signature: bytes,
        issued: Issued,
        plan: _Plan,
        forgery: Forgery,
    ) -> LogEntry:
        """Rekor ``dsse`` 0.0.1: envelope hash, payload hash, signatures with verifiers."""
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(rfc8785.dumps(envelope)).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": b64(signature), "verifier": b64(issued.certificate_pem.encode())}
                ],
            },
        }
        return self._log("dsse", body, plan, forgery)

    def _log_intoto(
        self,
        blob: bytes,
        payload: bytes,
        payload_type: str,
        signature: bytes,
        issued: Issued,
        plan: _Plan,
        forgery: Forgery,
    ) -> LogEntry:
        """Rekor ``intoto`` 0.0.2 as canonicalised by Rekor (``pkg/types/intoto/v0.0.2``):
        the payload is dropped, ``sig`` is base64 of the envelope's base64 signature text,
        ``publicKey`` base64 of the PEM, ``hash`` the SHA-256 of the submitted envelope."""
        body = {
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {
                "content": {
                    "envelope": {
                        "payloadType": payload_type,
                        "signatures": [
                            {
                                "publicKey": b64(issued.certificate_pem.encode()),
                                "sig": b64(b64(signature).encode()),
                            }
                        ],
                    },
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(blob).hexdigest()},
                    "payloadHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(payload).hexdigest(),
                    },
                }
            },
        }
        return self._log("intoto", body, plan, forgery)

    def _verification_material(
        self, issued: Issued, entry: LogEntry, signature: bytes, options: _SignOptions
    ) -> dict[str, Any]:
        material: dict[str, Any] = {
            "certificate": {"rawBytes": b64(_der(issued.certificate))},
            "tlogEntries": [entry.to_bundle()],
        }
        if options.timestamp or options.forgery.timestamp_outside_validity:
            if self.tsa is None:
                raise RuntimeError("Authority.create(..., with_tsa=True) is needed for timestamps")
            at = datetime.fromtimestamp(entry.integrated_time, tz=UTC)
            if options.forgery.timestamp_outside_validity:
                at = issued.certificate.not_valid_after_utc + timedelta(hours=1)
            token = self.tsa.timestamp(signature, at=at)
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": b64(token)}]
            }
        return material

    def sign_blob(
        self,
        data: bytes,
        *,
        identity: str,
        issuer: str,
        github: GitHubClaims | None = None,
        email: bool = False,
        key_type: KeyType = "p256",
        at: datetime | None = None,
        validity: timedelta = timedelta(minutes=10),
        issued: Issued | None = None,
        timestamp: bool = False,
        forgery: Forgery = NO_FORGERY,
    ) -> dict[str, Any]:
        """``cosign sign-blob --bundle`` / ``sigstore sign``: a v0.3 bundle with a
        ``messageSignature`` over ``data`` and a ``hashedrekord`` 0.0.1 entry.

        ``issued`` reuses a certificate (several signatures by one Fulcio answer); ``at``
        moves the signing time; ``timestamp`` adds an RFC 3161 token (``with_tsa``).
        """
        options = _SignOptions(github, email, key_type, issued, timestamp, forgery)
        plan = self._plan(at, validity, forgery)
        cert = self._issue_for(identity, issuer, plan, options)
        signature = _sign(cert.private_key, data)
        digest = hashlib.sha256(data).digest()
        entry = self._log_hashedrekord(digest, signature, cert, plan, forgery)
        return {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": self._verification_material(cert, entry, signature, options),
            "messageSignature": {
                "messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)},
                "signature": b64(signature),
            },
        }

    def sign_dsse(
        self,
        payload: bytes,
        payload_type: str = INTOTO_PAYLOAD_TYPE,
        *,
        identity: str,
        issuer: str,
        github: GitHubClaims | None = None,
        email: bool = False,
        key_type: KeyType = "p256",
        at: datetime | None = None,
        validity: timedelta = timedelta(minutes=10),
        issued: Issued | None = None,
        timestamp: bool = False,
        forgery: Forgery = NO_FORGERY,
    ) -> dict[str, Any]:
        """``cosign attest`` (v3 bundles) / ``sigstore attest``: a v0.3 bundle with a
        ``dsseEnvelope`` (signature over the PAE) and a ``dsse`` 0.0.1 entry."""
        options = _SignOptions(github, email, key_type, issued, timestamp, forgery)
        plan = self._plan(at, validity, forgery)
        cert = self._issue_for(identity, issuer, plan, options)
        signature = _sign(cert.private_key, pae(payload_type, payload))
        envelope = {
            "payload": b64(payload),
            "payloadType": payload_type,
            "signatures": [{"sig": b64(signature)}],
        }
        entry = self._log_dsse(envelope, payload, signature, cert, plan, forgery)
        return {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": self._verification_material(cert, entry, signature, options),
            "dsseEnvelope": envelope,
        }

    def sign_legacy(
        self,
        payload: bytes,
        *,
        identity: str,
        issuer: str,
        github: GitHubClaims | None = None,
        email: bool = False,
        key_type: KeyType = "p256",
        at: datetime | None = None,
        validity: timedelta = timedelta(minutes=10),
        issued: Issued | None = None,
        forgery: Forgery = NO_FORGERY,
    ) -> LegacyKeylessSignature:
        """``cosign sign`` (<= 2.x): a signature over the simplesigning ``payload`` and a
        ``hashedrekord`` 0.0.1 entry, as the ``.sig`` layer annotations carry them.

        The annotation carries only the SET, so the checkpoint and inclusion-proof
        forgeries are visible only in ``.entry`` (what an online lookup would return).
        """
        options = _SignOptions(github, email, key_type, issued, False, forgery)
        plan = self._plan(at, validity, forgery)
        cert = self._issue_for(identity, issuer, plan, options)
        signature = _sign(cert.private_key, payload)
        digest = hashlib.sha256(payload).digest()
        entry = self._log_hashedrekord(digest, signature, cert, plan, forgery)
        return LegacyKeylessSignature(payload, SIMPLESIGNING_MEDIA_TYPE, signature, cert, entry)

    def sign_legacy_dsse(
        self,
        payload: bytes,
        payload_type: str = INTOTO_PAYLOAD_TYPE,
        *,
        identity: str,
        issuer: str,
        predicate_type: str | None = None,
        entry_kind: Literal["intoto", "dsse"] = "intoto",
        github: GitHubClaims | None = None,
        email: bool = False,
        key_type: KeyType = "p256",
        at: datetime | None = None,
        validity: timedelta = timedelta(minutes=10),
        issued: Issued | None = None,
        forgery: Forgery = NO_FORGERY,
    ) -> LegacyKeylessSignature:
        """``cosign attest`` (<= 2.x): the layer blob is the DSSE envelope, the signature is
        over its PAE; the entry is ``intoto`` 0.0.2 (what cosign 2 uploads) or ``dsse``
        0.0.1."""
        options = _SignOptions(github, email, key_type, issued, False, forgery)
        plan = self._plan(at, validity, forgery)
        cert = self._issue_for(identity, issuer, plan, options)
        signature = _sign(cert.private_key, pae(payload_type, payload))
        envelope = {
            "payloadType": payload_type,
            "payload": b64(payload),
            "signatures": [{"keyid": "", "sig": b64(signature)}],
        }
        blob = json.dumps(envelope, separators=(",", ":")).encode()
        if entry_kind == "intoto":
            entry = self._log_intoto(blob, payload, payload_type, signature, cert, plan, forgery)
        else:
            entry = self._log_dsse(envelope, payload, signature, cert, plan, forgery)
        return LegacyKeylessSignature(blob, DSSE_MEDIA_TYPE, signature, cert, entry, predicate_type)

    def refresh_proof(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """The bundle with its inclusion proof and checkpoint re-issued against the current
        tree head, as a client would get by fetching the entry later: the entry is then no
        longer the last leaf, so the audit path mixes inner and right-border hashes."""
        entries = bundle["verificationMaterial"]["tlogEntries"]
        fresh = self.rekor.entry(int(entries[0]["logIndex"])).to_bundle()
        material = {**bundle["verificationMaterial"], "tlogEntries": [fresh]}
        return {**bundle, "verificationMaterial": material}


@dataclass(frozen=True)
class _SignOptions:
    github: GitHubClaims | None
    email: bool
    key_type: KeyType
    issued: Issued | None
    timestamp: bool
    forgery: Forgery


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)
