"""Signed attestations: one piece of material, one policy signer → a verified statement or a deny.

Pure: material bytes, the policy key and trust anchors in; no network. Three
material forms, as producers store them (``notes/formats.md``):

- ``bundle``: a Sigstore bundle with a DSSE envelope (cosign >= 3 referrers,
  GitHub artifact attestations, ``.sigstore`` / ``.intoto.jsonl`` files).
  Keyless bundles go through sigstore-python (``gate.evidence.bundle``)
  except two shapes it refuses, which take our own path, step for step the
  Sigstore client spec:

  * no transparency-log entry, an RFC 3161 timestamp instead (GitHub's
    private instance): the timestamp token verifies against a timestamp
    authority of the trust root (valid at its ``genTime``, bounds inclusive)
    over the signature; the certificate chains to a trust-root CA at that
    time; the DSSE signature verifies with the certificate's key. There is no
    log, so no SCT/inclusion requirement beyond what the certificate embeds.
  * a log entry of kind ``intoto`` 0.0.2 (cosign 2 attestations): the entry
    verifies against the trust root's log (SET, inclusion proof,
    checkpoint), and its body records this payload, this signature and this
    certificate; the certificate is then checked at ``integratedTime``.

- ``legacy``: a cosign <= 2 ``.att`` layer: the blob is the DSSE envelope,
  the annotations carry certificate and Rekor bundle (SET only); reuses
  ``gate.evidence.rekor`` / ``fulcio``.
- ``dsse``: a bare DSSE envelope (key signers; our own VSAs).

What was signed is checked afterwards (``gate.evidence.statement``), never
before the signature held.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gate.errors import GateError, SignatureError, VerificationError
from gate.evidence import fulcio, rekor
from gate.evidence.bundle import (
    BundleFormatError,
    is_key_bundle,
    key_fingerprint,
    load_bundle_json,
    verify_key_bundle,
    verify_keyless_bundle,
)
from gate.evidence.cosign import (
    BUNDLE_ANNOTATION,
    CERTIFICATE_ANNOTATION,
    verify_key_signature,
)
from gate.evidence.encoding import b64_field
from gate.evidence.identity import CertificateIdentity, check_identity, read_identity
from gate.policy.model import KeylessIdentity
from gate.signing.dsse import Envelope, EnvelopeFormatError
from gate.signing.keys import PublicKey
from gate.sources.trustroot import TrustRoot

DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
PREDICATE_TYPE_ANNOTATION = "predicateType"
MAX_MATERIAL_BYTES = 4 * 1024 * 1024

Form = Literal["bundle", "legacy", "dsse"]


@dataclass(frozen=True)
class Material:
    """One piece of attestation material (untrusted until verified)."""

    form: Form
    where: str
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)
    #: Where it can be fetched again (the gate's VSA lists it in inputAttestations).
    uri: str = ""

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def predicate_type_hint(self) -> str | None:
        """The UNSIGNED predicate type annotation: for ordering and messages only."""
        return self.annotations.get(PREDICATE_TYPE_ANNOTATION) or self.annotations.get(
            "dev.sigstore.bundle.predicateType"
        )


@dataclass(frozen=True)
class PolicySigner:
    """A policy key as an attestation signer: a public key or a keyless identity."""

    name: str
    public_key: PublicKey | None = None
    keyless: KeylessIdentity | None = None


@dataclass(frozen=True)
class VerifiedEnvelope:
    """A DSSE envelope whose signature held for the policy signer."""

    payload_type: str
    payload: bytes
    signer_id: str
    identity: CertificateIdentity | None
    material_digest: str
    where: str


def _b64(value: Any, what: str) -> bytes:
    return b64_field(value, what, BundleFormatError)


def _pem(obj: x509.Certificate | PublicKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _same_signer(pem: bytes, signer: x509.Certificate | PublicKey) -> bool:
    if isinstance(signer, x509.Certificate):
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return False
        return cert == signer
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return False
    return _pem(key) == _pem(signer)  # type: ignore[arg-type]


def verify_entry_body(
    body: bytes,
    *,
    payload_type: str,
    payload: bytes,
    signature: bytes,
    signer: x509.Certificate | PublicKey,
) -> None:
    """A Rekor ``intoto`` 0.0.2 or ``dsse`` 0.0.1 body records THIS envelope's signature.

    Without it a valid SET over any entry would vouch for any envelope
    (CVE-2022-36056 class). ``intoto`` 0.0.2 stores ``sig`` as base64 of the
    envelope's base64 signature text; ``dsse`` stores the raw signature.
    """
    try:
        doc = json.loads(body)
        kind, version, spec = doc["kind"], doc["apiVersion"], doc["spec"]
        if (kind, version) == ("intoto", "0.0.2"):
            content = spec["content"]
            recorded_type = content["envelope"]["payloadType"]
            payload_hash = content["payloadHash"]["value"]
            sigs = [
                (base64.b64decode(s["sig"]), base64.b64decode(s["publicKey"]))
                for s in content["envelope"]["signatures"]
            ]
            # sig is b64(b64(raw)); accept the raw form too.
            decoded: list[tuple[bytes, bytes]] = []
            for s, k in sigs:
                try:
                    decoded.append((base64.b64decode(s, validate=True), k))
                except binascii.Error:
                    decoded.append((s, k))
            sigs = decoded
        elif (kind, version) == ("dsse", "0.0.1"):
            recorded_type = None
            payload_hash = spec["payloadHash"]["value"]
            sigs = [
                (base64.b64decode(s["signature"]), base64.b64decode(s["verifier"]))
                for s in spec["signatures"]
            ]
        else:
            raise rekor.TlogError(
                "unsupported transparency log entry kind for an attestation",
                found=f"{kind} {version}",
                expected="intoto 0.0.2 or dsse 0.0.1",
            )
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise rekor.TlogError(f"the transparency log entry body is malformed: {e}") from e
    if recorded_type is not None and recorded_type != payload_type:
        raise rekor.TlogError("the log entry records another payload type")
    if payload_hash != hashlib.sha256(payload).hexdigest():
        raise rekor.TlogError("the transparency log entry is for another payload")
    if not any(s == signature and _same_signer(k, signer) for s, k in sigs):
        raise rekor.TlogError("the transparency log entry records another signature or signer")


def _envelope_signature(env: Envelope, key: PublicKey) -> bytes:
    """The first envelope signature that verifies with ``key`` over the PAE."""
    for sig in env.signatures:
        try:
            verify_key_signature(key, sig.sig, env.pae())
            return sig.sig
        except SignatureError:
            continue
    raise SignatureError(
        "no signature in the DSSE envelope verifies with the expected key",
        reason="untrusted-signer",
        hint="signed by another key, or the statement was changed after signing",
    )


def _parse_envelope(data: bytes) -> Envelope:
    if len(data) > MAX_MATERIAL_BYTES:
        raise SignatureError("the attestation is larger than 4 MiB")
    try:
        return Envelope.from_json(data)
    except EnvelopeFormatError as e:
        raise SignatureError(f"the attestation is not a DSSE envelope: {e}") from e


# --- RFC 3161 timestamps (GitHub's private instance) ----------------------------------------


def verify_timestamp(root: TrustRoot, token: bytes, signature: bytes) -> dt.datetime:
    """The ``genTime`` of an RFC 3161 token over ``signature`` from a trust-root TSA.

    As sigstore-python ``_verify_signed_timestamp``, except that a TSA's
    ``validFor.end`` is inclusive (TimeRange is a closed interval).
    """
    from rfc3161_client import VerificationError as TsaError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    try:
        response = decode_timestamp_response(token)
    except (ValueError, TypeError) as e:
        raise rekor.TlogError(f"the RFC 3161 timestamp is malformed: {e}") from e
    authorities = root.sigstore.get_timestamp_authorities()
    if not authorities:
        raise rekor.TlogError(
            "the bundle is timestamped by an RFC 3161 authority, but the trust root lists none",
            hint="pass the trusted_root.json of the instance that signed it (e.g. GitHub's)",
        )
    for ca in authorities:
        certs = ca.certificates(allow_expired=True)
        if len(certs) < 2:
            continue
        builder = VerifierBuilder().tsa_certificate(certs[0]).add_root_certificate(certs[-1])
        for c in certs[1:-1]:
            builder = builder.add_intermediate_certificate(c)
        try:
            builder.build().verify_message(response, signature)
        except TsaError:
            continue
        at = response.tst_info.gen_time
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        start, end = ca.validity_period_start, ca.validity_period_end
        if (start is None or start <= at) and (end is None or at <= end):
            return at
    raise rekor.TlogError(
        "the RFC 3161 timestamp does not verify against a timestamp authority of the trust root",
        hint=f"trust root: {root.source}",
    )


# --- bundles --------------------------------------------------------------------------------


def _bundle_parts(
    doc: Mapping[str, Any],
) -> tuple[Envelope, x509.Certificate, list[Any], list[bytes]]:
    env_doc = doc.get("dsseEnvelope")
    if not isinstance(env_doc, dict):
        raise BundleFormatError("the bundle carries no DSSE envelope (not an attestation)")
    try:
        env = Envelope.from_dict(env_doc)
    except EnvelopeFormatError as e:
        raise BundleFormatError(str(e)) from e
    vm = doc.get("verificationMaterial") or {}
    raw = (vm.get("certificate") or {}).get("rawBytes")
    if raw is None:
        chain = (vm.get("x509CertificateChain") or {}).get("certificates") or []
        raw = chain[0].get("rawBytes") if chain and isinstance(chain[0], dict) else None
    try:
        cert = x509.load_der_x509_certificate(_b64(raw, "bundle certificate"))
    except ValueError as e:
        raise BundleFormatError(f"the bundle certificate is not DER: {e}") from e
    entries = vm.get("tlogEntries") or []
    stamps = [
        _b64(t.get("signedTimestamp"), "RFC 3161 timestamp")
        for t in ((vm.get("timestampVerificationData") or {}).get("rfc3161Timestamps") or [])
        if isinstance(t, dict)
    ]
    if not isinstance(entries, list):
        raise BundleFormatError("tlogEntries is not a list")
    return env, cert, entries, stamps


V01_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle+json;version=0.1"


def _set_entry(raw: Mapping[str, Any]) -> rekor.RekorEntry:
    """A bundle tlog entry as the legacy ``RekorEntry`` whose SET ``rekor.verify_set`` checks."""
    try:
        promise = raw["inclusionPromise"]["signedEntryTimestamp"]
        return rekor.RekorEntry(
            _b64(promise, "signedEntryTimestamp"),
            str(raw["canonicalizedBody"]),
            int(raw["integratedTime"]),
            int(raw["logIndex"]),
            _b64(raw["logId"]["keyId"], "logId"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise rekor.TlogError(f"the transparency log entry has no inclusion promise: {e}") from e


def _own_keyless_bundle(
    doc: Mapping[str, Any], root: TrustRoot, expected: KeylessIdentity, now: dt.datetime
) -> tuple[Envelope, x509.Certificate]:
    """Our path for keyless DSSE bundles sigstore-python refuses (see module docstring)."""
    env, cert, entries, stamps = _bundle_parts(doc)
    if len(env.signatures) != 1:
        raise BundleFormatError("a bundle's DSSE envelope must carry exactly one signature")
    signature = env.signatures[0].sig
    try:
        verify_key_signature(cert.public_key(), signature, env.pae())  # type: ignore[arg-type]
    except SignatureError as e:
        raise SignatureError(
            "the DSSE signature does not verify with the bundle's certificate",
            hint="the statement was changed after signing",
        ) from e
    times: list[dt.datetime] = [verify_timestamp(root, t, signature) for t in stamps]
    if entries:
        if len(entries) != 1:
            raise rekor.TlogError("the bundle must carry exactly one transparency log entry")
        from sigstore._internal.trust import KeyringPurpose
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import TransparencyLogEntry
        from sigstore_models.rekor.v1 import TransparencyLogEntry as EntryModel

        raw = entries[0]
        if not isinstance(raw, dict):
            raise rekor.TlogError("the transparency log entry is not an object")
        if "inclusionProof" in raw:
            try:
                entry = TransparencyLogEntry(EntryModel.from_json(json.dumps(raw)))
                # SET, inclusion proof and checkpoint against the trust root's log keys.
                entry._verify(root.sigstore.rekor_keyring(KeyringPurpose.VERIFY))
            except (SigstoreError, ValueError, TypeError, KeyError) as e:
                raise rekor.TlogError(f"the transparency log entry does not verify: {e}") from e
        elif doc.get("mediaType") == V01_MEDIA_TYPE:
            # Bundle v0.1: the inclusion promise (SET) alone is the log's evidence.
            rekor.verify_set(_set_entry(raw), root, now)
        else:
            raise rekor.TlogError(
                "the transparency log entry has no inclusion proof",
                expected="an inclusion proof with a checkpoint (bundle v0.2 and later)",
            )
        verify_entry_body(
            _b64(raw.get("canonicalizedBody"), "canonicalizedBody"),
            payload_type=env.payload_type,
            payload=env.payload,
            signature=signature,
            signer=cert,
        )
        try:
            integrated = int(raw["integratedTime"])
        except (KeyError, TypeError, ValueError) as e:
            raise rekor.TlogError("the log entry has no integratedTime") from e
        at = dt.datetime.fromtimestamp(integrated, tz=dt.UTC)
        times.append(at)
    if not times:
        raise rekor.TlogError(
            "the keyless bundle has neither a transparency log entry nor a signed timestamp",
            hint="an ephemeral certificate is only trustworthy with a trusted time",
        )
    # Every trusted time must fall inside the certificate's validity, and the
    # chain must hold at it (sigstore-python checks each established time).
    for at in times:
        fulcio.check_validity_at(cert, at)
        chain = fulcio.verify_chain(cert, root, at)
        if entries:
            fulcio.verify_sct(cert, chain, root)
    check_identity(read_identity(cert), expected)
    return env, cert


def _keyless_bundle(
    data: bytes, root: TrustRoot, expected: KeylessIdentity, now: dt.datetime
) -> VerifiedEnvelope:
    doc = load_bundle_json(data)
    if is_key_bundle(doc):
        raise SignatureError(
            "the bundle is signed with a public key, not a keyless certificate",
            reason="untrusted-signer",
        )
    vm = doc.get("verificationMaterial") or {}
    entries = vm.get("tlogEntries") or []
    kinds = {
        ((e.get("kindVersion") or {}).get("kind"), (e.get("kindVersion") or {}).get("version"))
        for e in entries
        if isinstance(e, dict)
    }
    no_proof = any(isinstance(e, dict) and "inclusionProof" not in e for e in entries)
    if not entries or ("intoto", "0.0.2") in kinds or no_proof:
        env, cert = _own_keyless_bundle(doc, root, expected, now)
        ident = read_identity(cert)
        return VerifiedEnvelope(
            env.payload_type,
            env.payload,
            f"keyless:{ident.issuer}:{ident.subject}",
            ident,
            "sha256:" + hashlib.sha256(data).hexdigest(),
            "",
        )
    result = verify_keyless_bundle(data, root, expected)
    if result.content != "dsse-envelope" or result.payload is None or result.certificate is None:
        raise SignatureError("the bundle is a message signature, not an attestation")
    return VerifiedEnvelope(
        result.payload_type or "",
        result.payload,
        result.signer_id,
        read_identity(result.certificate),
        "sha256:" + hashlib.sha256(data).hexdigest(),
        "",
    )


# --- legacy .att layers ---------------------------------------------------------------------


def _legacy(
    material: Material,
    signer: PolicySigner,
    root: Callable[[], TrustRoot],
    now: dt.datetime,
) -> VerifiedEnvelope:
    env = _parse_envelope(material.data)
    ann = material.annotations
    if signer.public_key is not None:
        signature = _envelope_signature(env, signer.public_key)
        if ann.get(BUNDLE_ANNOTATION):
            # A log entry the signer attached must hold too (never ignored).
            entry = rekor.parse_cosign_bundle(ann[BUNDLE_ANNOTATION])
            rekor.verify_set(entry, root(), now)
            verify_entry_body(
                entry.body,
                payload_type=env.payload_type,
                payload=env.payload,
                signature=signature,
                signer=signer.public_key,
            )
        return VerifiedEnvelope(
            env.payload_type,
            env.payload,
            f"key:{key_fingerprint(signer.public_key)}",
            None,
            material.digest,
            material.where,
        )
    if signer.keyless is None:
        raise SignatureError(
            f"key {signer.name!r} cannot sign attestations", reason="untrusted-signer"
        )
    pem = ann.get(CERTIFICATE_ANNOTATION)
    if not pem:
        raise SignatureError(
            "a key-based attestation; the policy expects a keyless (Fulcio) signer",
            reason="untrusted-signer",
        )
    cert = fulcio.load_certificate(pem)
    signature = _envelope_signature(env, cert.public_key())  # type: ignore[arg-type]
    bundle = ann.get(BUNDLE_ANNOTATION)
    if not bundle:
        raise rekor.TlogError(
            "the keyless attestation has no transparency-log bundle",
            hint="an ephemeral certificate is only trustworthy with the log's timestamp",
        )
    trust = root()
    entry = rekor.parse_cosign_bundle(bundle)
    rekor.verify_set(entry, trust, now)
    verify_entry_body(
        entry.body,
        payload_type=env.payload_type,
        payload=env.payload,
        signature=signature,
        signer=cert,
    )
    fulcio.verify_certificate(cert, trust, entry.integrated_at)
    identity = read_identity(cert)
    check_identity(identity, signer.keyless)
    return VerifiedEnvelope(
        env.payload_type,
        env.payload,
        f"keyless:{identity.issuer}:{identity.subject}",
        identity,
        material.digest,
        material.where,
    )


# --- entry point ----------------------------------------------------------------------------


def verify_envelope(
    material: Material,
    signer: PolicySigner,
    root: Callable[[], TrustRoot],
    now: dt.datetime,
) -> VerifiedEnvelope:
    """The envelope's payload if ``signer`` validly signed ``material``; else a deny."""
    if len(material.data) > MAX_MATERIAL_BYTES:
        raise SignatureError("the attestation material is larger than 4 MiB")
    if material.form == "legacy":
        return _legacy(material, signer, root, now)
    if material.form == "dsse":
        env = _parse_envelope(material.data)
        if signer.public_key is None:
            if b'"cert"' in material.data:
                raise rekor.TlogError(
                    "a bare DSSE envelope with an embedded certificate has no log evidence offline",
                    hint="use the Sigstore bundle form (.sigstore / .intoto.jsonl bundles)",
                )
            raise SignatureError(
                "a bare DSSE envelope can only be verified with a public key",
                reason="untrusted-signer",
            )
        _envelope_signature(env, signer.public_key)
        return VerifiedEnvelope(
            env.payload_type,
            env.payload,
            f"key:{key_fingerprint(signer.public_key)}",
            None,
            material.digest,
            material.where,
        )
    if signer.public_key is not None:
        trust: TrustRoot | None
        try:
            trust = root()
        except GateError:
            trust = None  # key bundles without log entries need no trust root
        result = verify_key_bundle(material.data, signer.public_key, None, trust)
        if result.content != "dsse-envelope" or result.payload is None:
            raise SignatureError("the bundle is a message signature, not an attestation")
        return VerifiedEnvelope(
            result.payload_type or "",
            result.payload,
            result.signer_id,
            None,
            material.digest,
            material.where,
        )
    if signer.keyless is None:
        raise SignatureError(
            f"key {signer.name!r} cannot sign attestations", reason="untrusted-signer"
        )
    out = _keyless_bundle(material.data, root(), signer.keyless, now)
    return VerifiedEnvelope(
        out.payload_type, out.payload, out.signer_id, out.identity, material.digest, material.where
    )


def read_material_file(data: bytes, where: str) -> list[Material]:
    """Attestation material from a file: a bundle, a DSSE envelope, or JSON lines of them."""
    text = data.strip()
    docs: list[bytes]
    try:
        json.loads(text)
        docs = [text]
    except ValueError:
        docs = [line.strip() for line in text.splitlines() if line.strip()]
    out: list[Material] = []
    for i, doc in enumerate(docs):
        try:
            parsed = json.loads(doc)
        except ValueError as e:
            raise VerificationError(
                f"{where}: line {i + 1} is not JSON: {e}", reason="malformed-statement"
            ) from e
        form: Form = (
            "bundle" if isinstance(parsed, dict) and "verificationMaterial" in parsed else "dsse"
        )
        out.append(Material(form, f"{where}#{i + 1}" if len(docs) > 1 else where, doc))
    return out


__all__ = [
    "DSSE_MEDIA_TYPE",
    "Material",
    "PolicySigner",
    "VerifiedEnvelope",
    "read_material_file",
    "verify_entry_body",
    "verify_envelope",
    "verify_timestamp",
]
