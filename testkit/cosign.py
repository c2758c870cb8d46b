"""Write exactly what cosign writes into a registry: signatures, attestations, bundles.

Two storage forms (see ``notes/formats.md``):

- **legacy** (cosign <= 2.x, still read by cosign 3 and Flux): one manifest
  per image under ``sha256-<hex>.sig`` (signatures) or ``.att``
  (attestations), one layer per signature.
  Signature layer: media type ``application/vnd.dev.cosign.simplesigning.v1+json``,
  the blob is the simple-signing payload, the signature is over those bytes.
  Attestation layer: media type ``application/vnd.dsse.envelope.v1+json``, the
  blob is the DSSE envelope JSON, ``predicateType`` annotation, empty
  ``dev.cosignproject.cosign/signature``. Keyless adds the certificate, chain
  and Rekor bundle annotations (minted by the private authority).
- **bundle** (cosign >= 3): a Sigstore bundle v0.3 as an OCI 1.1 referrer of
  the image (``artifactType`` = the bundle media type, empty config, one
  layer, ``subject``, annotations ``dev.sigstore.bundle.content`` and
  ``dev.sigstore.bundle.predicateType``), listed in the fallback index tag
  ``sha256-<hex>`` because distribution 2.8.2 has no referrers API.
  ``cosign sign`` v3 signs an in-toto statement with predicate type
  ``https://sigstore.dev/cosign/sign/v1`` whose subject is the image digest.

Each writer takes exactly one of ``key=`` (a ``gate.signing`` key) or
``keyless=`` (:class:`Keyless`, through the private Sigstore authority), and a
:class:`Forgery` for the negative tests of the verifiers: a signature over
another digest, a payload changed after signing. :func:`copy_signatures` and
:func:`copy_referrer` move genuine material to another image.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gate.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    Envelope,
    KeyPair,
    Signer,
    pae,
    sign_envelope,
)
from testkit import oci
from testkit.attestations import STATEMENT_V1, statement_bytes
from testkit.registry import Registry
from testkit.sigstore_authority import Authority, GitHubClaims
from testkit.sigstore_authority import Forgery as AuthorityForgery

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIMPLESIGNING_TYPE = "cosign container image signature"
COSIGN_SIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"
GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com"

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
PREDICATE_TYPE_ANNOTATION = "predicateType"
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"

BundleContent = Literal["dsse-envelope", "message-signature"]


# --- who signs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Keyless:
    """A keyless signer: a Fulcio certificate for ``identity`` from the private authority."""

    authority: Authority
    identity: str
    issuer: str = GITHUB_ACTIONS_ISSUER
    github: GitHubClaims | None = None
    #: Certificate / log defects, passed through to the authority.
    forgery: AuthorityForgery = field(default_factory=AuthorityForgery)

    @classmethod
    def github_workflow(cls, authority: Authority, claims: GitHubClaims) -> Keyless:
        return cls(authority, claims.identity, GITHUB_ACTIONS_ISSUER, claims)

    def kwargs(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "issuer": self.issuer,
            "github": self.github,
            "forgery": self.forgery,
        }


@dataclass(frozen=True)
class Forgery:
    """What to get wrong on purpose; the default gets nothing wrong.

    ``signed_digest``: the payload / statement names this digest while the
    material is stored for the real image (a genuine signature over another
    digest). ``docker_reference``: the simple-signing payload names another
    repository. ``tamper_payload``: the stored payload differs from the signed
    bytes (changed after signing).
    """

    signed_digest: str | None = None
    docker_reference: str | None = None
    tamper_payload: bool = False


NO_FORGERY = Forgery()


def _signer(key: Signer | KeyPair | None, keyless: Keyless | None) -> Signer | Keyless:
    if (key is None) == (keyless is None):
        raise TypeError("pass exactly one of key= or keyless=")
    if isinstance(key, KeyPair):
        return Signer(key.private_key)
    return key if key is not None else keyless  # type: ignore[return-value]


def default_reference(target: oci.Target, repo: str) -> str:
    """The ``docker-reference`` cosign writes: the repository, without tag or digest."""
    if isinstance(target, Registry):
        return target.ref(repo)
    host = target.base_url.split("://", 1)[-1]
    return f"{host}/{repo}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _now_rfc3339() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --- payloads ----------------------------------------------------------------------------


def simple_signing_payload(
    docker_reference: str, digest: str, optional: Mapping[str, Any] | None = None
) -> bytes:
    """The payload ``cosign sign`` (<= 2.x) signs, byte for byte as Go marshals it."""
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLESIGNING_TYPE,
        },
        "optional": dict(optional) if optional is not None else None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _tampered_simple_signing(payload: bytes) -> bytes:
    doc = json.loads(payload)
    doc["optional"] = {**(doc.get("optional") or {}), "tampered": "after-signing"}
    return json.dumps(doc, separators=(",", ":")).encode()


def _tampered_statement(payload: bytes) -> bytes:
    doc = json.loads(payload)
    predicate = doc.get("predicate")
    doc["predicate"] = {
        **(predicate if isinstance(predicate, dict) else {}),
        "tampered": "after-signing",
    }
    return statement_bytes(doc)


def sign_statement_v3(digest: str, annotations: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The statement ``cosign sign`` v3 signs: subject = the image digest, no name, empty
    predicate (``protojson`` of an in-toto v1 Statement)."""
    algorithm, _, hex_value = digest.partition(":")
    return {
        "_type": STATEMENT_V1,
        "subject": [{"digest": {algorithm: hex_value}, "annotations": dict(annotations or {})}],
        "predicateType": COSIGN_SIGN_PREDICATE_TYPE,
        "predicate": {},
    }


def attestation_statement(
    docker_reference: str, digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> dict[str, Any]:
    """The statement ``cosign attest`` wraps a predicate in: one subject, the repository."""
    algorithm, _, hex_value = digest.partition(":")
    return {
        "_type": STATEMENT_V1,
        "subject": [{"name": docker_reference, "digest": {algorithm: hex_value}}],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }


# --- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    """What a writer stored, for assertions and for building further forgeries."""

    manifest: oci.Descriptor  # the .sig/.att manifest, or the referrer manifest
    repo: str  # where it was stored
    tag: str | None  # sha256-<hex>.sig / .att for legacy; the fallback tag for referrers
    payload: bytes  # the bytes as stored (simple-signing payload or DSSE payload)
    signed_bytes: bytes  # what the signature covers (payload, or its PAE)
    signature: bytes  # raw signature
    layer: oci.Layer | None = None  # legacy forms
    bundle: dict[str, Any] | None = None  # bundle forms
    certificate_pem: str | None = None  # keyless


# --- legacy signatures (.sig) -------------------------------------------------------------


def signature_layer(
    payload: bytes,
    *,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    tamper: bool = False,
) -> tuple[oci.Layer, bytes, str | None]:
    """One ``.sig`` layer over ``payload``: (layer, raw signature, certificate PEM)."""
    who = _signer(key, keyless)
    stored = _tampered_simple_signing(payload) if tamper else payload
    if isinstance(who, Signer):
        signature = who.sign(payload)
        return (
            oci.Layer(stored, SIMPLESIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: _b64(signature)}),
            signature,
            None,
        )
    legacy = who.authority.sign_legacy(payload, **who.kwargs())
    layer = oci.Layer(stored, SIMPLESIGNING_MEDIA_TYPE, legacy.annotations())
    return layer, legacy.signature, legacy.certificate_pem


def sign_image_legacy(
    target: oci.Target,
    repo: str,
    digest: str,
    *,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    docker_reference: str | None = None,
    optional: Mapping[str, Any] | None = None,
    signature_repo: str | None = None,
    forgery: Forgery = NO_FORGERY,
    append: bool = True,
) -> Pushed:
    """``cosign sign`` (<= 2.x): add one signature layer to ``sha256-<hex>.sig``.

    ``signature_repo`` stores it elsewhere, as ``COSIGN_REPOSITORY`` does.
    """
    reference = forgery.docker_reference or docker_reference or default_reference(target, repo)
    payload = simple_signing_payload(reference, forgery.signed_digest or digest, optional)
    layer, signature, cert = signature_layer(
        payload, key=key, keyless=keyless, tamper=forgery.tamper_payload
    )
    store = signature_repo or repo
    manifest = oci.push_signature_manifest(target, store, digest, [layer], "sig", append=append)
    return Pushed(
        manifest=manifest,
        repo=store,
        tag=oci.signature_tag(digest, "sig"),
        payload=layer.data,
        signed_bytes=payload,
        signature=signature,
        layer=layer,
        certificate_pem=cert,
    )


# --- legacy attestations (.att) -----------------------------------------------------------


def attestation_layer(
    statement: Mapping[str, Any] | bytes,
    predicate_type: str,
    *,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    tamper: bool = False,
) -> tuple[oci.Layer, bytes, bytes, str | None]:
    """One ``.att`` layer: (layer, DSSE payload as signed, raw signature, certificate PEM)."""
    who = _signer(key, keyless)
    payload = statement if isinstance(statement, bytes) else statement_bytes(statement)
    annotations: dict[str, str]
    cert: str | None = None
    if isinstance(who, Signer):
        envelope = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, who)
        signature = envelope.signatures[0].sig
        annotations = {SIGNATURE_ANNOTATION: "", PREDICATE_TYPE_ANNOTATION: predicate_type}
    else:
        legacy = who.authority.sign_legacy_dsse(
            payload, IN_TOTO_PAYLOAD_TYPE, predicate_type=predicate_type, **who.kwargs()
        )
        envelope = Envelope.from_json(legacy.payload)
        signature = legacy.signature
        annotations = legacy.annotations()
        cert = legacy.certificate_pem
    blob = envelope.to_json() if isinstance(who, Signer) else legacy.payload
    if tamper:
        blob = Envelope(
            _tampered_statement(payload), envelope.payload_type, envelope.signatures
        ).to_json()
    return oci.Layer(blob, DSSE_MEDIA_TYPE, annotations), payload, signature, cert


def attest_image_legacy(
    target: oci.Target,
    repo: str,
    digest: str,
    predicate_type: str,
    predicate: Mapping[str, Any] | None = None,
    *,
    statement: Mapping[str, Any] | bytes | None = None,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    docker_reference: str | None = None,
    signature_repo: str | None = None,
    forgery: Forgery = NO_FORGERY,
    append: bool = True,
) -> Pushed:
    """``cosign attest`` (<= 2.x): add one DSSE layer to ``sha256-<hex>.att``.

    Give a ``predicate`` (wrapped as cosign does, subject = the image) or a
    complete ``statement`` (e.g. from ``testkit.attestations``).
    """
    if statement is None:
        if predicate is None:
            raise TypeError("pass predicate= or statement=")
        reference = forgery.docker_reference or docker_reference or default_reference(target, repo)
        statement = attestation_statement(
            reference, forgery.signed_digest or digest, predicate_type, predicate
        )
    layer, payload, signature, cert = attestation_layer(
        statement, predicate_type, key=key, keyless=keyless, tamper=forgery.tamper_payload
    )
    store = signature_repo or repo
    manifest = oci.push_signature_manifest(target, store, digest, [layer], "att", append=append)
    stored = Envelope.from_json(layer.data).payload
    return Pushed(
        manifest=manifest,
        repo=store,
        tag=oci.signature_tag(digest, "att"),
        payload=stored,
        signed_bytes=pae(IN_TOTO_PAYLOAD_TYPE, payload),
        signature=signature,
        layer=layer,
        certificate_pem=cert,
    )


# --- Sigstore bundles as OCI referrers (cosign >= 3) ---------------------------------------


def public_key_hint(signer: Signer) -> str:
    """The ``publicKey.hint`` of a key-based bundle: base64 SHA-256 of the PKIX DER key."""
    from cryptography.hazmat.primitives import serialization

    der = signer.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(hashlib.sha256(der).digest())


def key_bundle_dsse(envelope: Envelope, signer: Signer) -> dict[str, Any]:
    """A bundle v0.3 for a key-signed DSSE envelope, without a log entry
    (``cosign attest --key … --tlog-upload=false``; what Flux verifies offline)."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(signer)}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": _b64(envelope.payload),
            "payloadType": envelope.payload_type,
            "signatures": [{"sig": _b64(s.sig)} for s in envelope.signatures],
        },
    }


def key_bundle_message(data: bytes, signature: bytes, signer: Signer) -> dict[str, Any]:
    """A bundle v0.3 for a key-based message signature over ``data`` (no log entry)."""
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": public_key_hint(signer)}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": _b64(hashlib.sha256(data).digest()),
            },
            "signature": _b64(signature),
        },
    }


def _subject(target: oci.Target, repo: str, image: oci.Descriptor | str) -> oci.Descriptor:
    if isinstance(image, oci.Descriptor):
        return image
    fetched = oci.get_manifest(target, repo, image)
    return oci.Descriptor(fetched.digest, len(fetched.data), fetched.media_type)


def _bundle_annotations(
    content: BundleContent, predicate_type: str, created: str | None
) -> dict[str, str]:
    out = {BUNDLE_CONTENT_ANNOTATION: content, BUNDLE_PREDICATE_TYPE_ANNOTATION: predicate_type}
    if created is not None:
        out[CREATED_ANNOTATION] = created
    return out


def _tamper_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(bundle)
    if "dsseEnvelope" in out:
        payload = base64.b64decode(out["dsseEnvelope"]["payload"])
        out["dsseEnvelope"]["payload"] = _b64(_tampered_statement(payload))
    else:
        digest = bytearray(base64.b64decode(out["messageSignature"]["messageDigest"]["digest"]))
        digest[0] ^= 1
        out["messageSignature"]["messageDigest"]["digest"] = _b64(bytes(digest))
    return out


def _dsse_bundle(payload: bytes, who: Signer | Keyless) -> tuple[dict[str, Any], bytes, str | None]:
    """(bundle, raw signature, certificate PEM) for a DSSE in-toto payload."""
    if isinstance(who, Signer):
        envelope = sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, who)
        return key_bundle_dsse(envelope, who), envelope.signatures[0].sig, None
    bundle = who.authority.sign_dsse(payload, IN_TOTO_PAYLOAD_TYPE, **who.kwargs())
    signature = base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"])
    return bundle, signature, _bundle_certificate_pem(bundle)


def _bundle_certificate_pem(bundle: Mapping[str, Any]) -> str | None:
    raw = bundle.get("verificationMaterial", {}).get("certificate", {}).get("rawBytes")
    if not raw:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def push_bundle_referrer(
    target: oci.Target,
    repo: str,
    image: oci.Descriptor | str,
    bundle: Mapping[str, Any],
    *,
    content: BundleContent,
    predicate_type: str,
    created: str | None = None,
) -> oci.Descriptor:
    """Store ``bundle`` as cosign v3 does: a referrer of ``image`` plus the fallback index."""
    subject = _subject(target, repo, image)
    data = json.dumps(bundle, separators=(",", ":")).encode()
    return oci.push_referrer(
        target,
        repo,
        subject,
        BUNDLE_MEDIA_TYPE,
        data,
        BUNDLE_MEDIA_TYPE,
        _bundle_annotations(content, predicate_type, created),
    )


def sign_image_bundle(
    target: oci.Target,
    repo: str,
    image: oci.Descriptor | str,
    *,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    content: BundleContent = "dsse-envelope",
    docker_reference: str | None = None,
    annotations: Mapping[str, Any] | None = None,
    forgery: Forgery = NO_FORGERY,
    created: str | None = "now",
) -> Pushed:
    """``cosign sign`` v3: a bundle referrer with predicate type ``…/cosign/sign/v1``.

    ``content="dsse-envelope"`` (cosign 3's default) signs the in-toto statement
    whose subject is the image digest; ``"message-signature"`` signs the
    simple-signing payload instead (the form other producers, e.g. Tekton
    Chains, store under the same predicate-type annotation).
    ``created``: the ``org.opencontainers.image.created`` annotation; ``"now"``
    stamps the current time as cosign does, ``None`` leaves it out (stable digests).
    """
    who = _signer(key, keyless)
    subject = _subject(target, repo, image)
    digest = forgery.signed_digest or subject.digest
    if content == "dsse-envelope":
        payload = statement_bytes(sign_statement_v3(digest, annotations))
        bundle, signature, cert = _dsse_bundle(payload, who)
        signed = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    else:
        reference = forgery.docker_reference or docker_reference or default_reference(target, repo)
        payload = simple_signing_payload(reference, digest, annotations)
        if isinstance(who, Signer):
            signature = who.sign(payload)
            bundle, cert = key_bundle_message(payload, signature, who), None
        else:
            bundle = who.authority.sign_blob(payload, **who.kwargs())
            signature = base64.b64decode(bundle["messageSignature"]["signature"])
            cert = _bundle_certificate_pem(bundle)
        signed = payload
    if forgery.tamper_payload:
        bundle = _tamper_bundle(bundle)
        if content == "dsse-envelope":
            payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    manifest = push_bundle_referrer(
        target,
        repo,
        subject,
        bundle,
        content=content,
        predicate_type=COSIGN_SIGN_PREDICATE_TYPE,
        created=_now_rfc3339() if created == "now" else created,
    )
    return Pushed(
        manifest=manifest,
        repo=repo,
        tag=oci.referrers_tag(subject.digest),
        payload=payload,
        signed_bytes=signed,
        signature=signature,
        bundle=bundle,
        certificate_pem=cert,
    )


def attest_image_bundle(
    target: oci.Target,
    repo: str,
    image: oci.Descriptor | str,
    predicate_type: str,
    predicate: Mapping[str, Any] | None = None,
    *,
    statement: Mapping[str, Any] | bytes | None = None,
    key: Signer | KeyPair | None = None,
    keyless: Keyless | None = None,
    docker_reference: str | None = None,
    forgery: Forgery = NO_FORGERY,
    created: str | None = "now",
) -> Pushed:
    """``cosign attest`` v3 (and GitHub's ``attest-build-provenance`` with
    ``push-to-registry``): a DSSE bundle referrer with the predicate type annotated."""
    who = _signer(key, keyless)
    subject = _subject(target, repo, image)
    if statement is None:
        if predicate is None:
            raise TypeError("pass predicate= or statement=")
        reference = forgery.docker_reference or docker_reference or default_reference(target, repo)
        statement = attestation_statement(
            reference, forgery.signed_digest or subject.digest, predicate_type, predicate
        )
    payload = statement if isinstance(statement, bytes) else statement_bytes(statement)
    bundle, signature, cert = _dsse_bundle(payload, who)
    signed = pae(IN_TOTO_PAYLOAD_TYPE, payload)
    if forgery.tamper_payload:
        bundle = _tamper_bundle(bundle)
        payload = base64.b64decode(bundle["dsseEnvelope"]["payload"])
    manifest = push_bundle_referrer(
        target,
        repo,
        subject,
        bundle,
        content="dsse-envelope",
        predicate_type=predicate_type,
        created=_now_rfc3339() if created == "now" else created,
    )
    return Pushed(
        manifest=manifest,
        repo=repo,
        tag=oci.referrers_tag(subject.digest),
        payload=payload,
        signed_bytes=signed,
        signature=signature,
        bundle=bundle,
        certificate_pem=cert,
    )


# --- moving genuine material to another image -----------------------------------------------


def copy_signatures(
    target: oci.Target,
    src_repo: str,
    src_digest: str,
    dst_repo: str,
    dst_digest: str,
    suffix: Literal["sig", "att"] = "sig",
) -> oci.Descriptor:
    """Copy every layer of ``src``'s ``.sig``/``.att`` manifest into ``dst``'s: genuine
    signatures of another image, the replay a verifier must refuse."""
    found = oci.get_manifest(target, src_repo, oci.signature_tag(src_digest, suffix))
    layers = [
        oci.Layer(
            oci.get_blob(target, src_repo, entry["digest"]),
            entry["mediaType"],
            entry.get("annotations"),
        )
        for entry in found.json()["layers"]
    ]
    return oci.push_signature_manifest(target, dst_repo, dst_digest, layers, suffix)


def copy_referrer(
    target: oci.Target,
    pushed: Pushed,
    dst_repo: str,
    dst_image: oci.Descriptor | str,
) -> oci.Descriptor:
    """Attach a bundle that was minted for one image to another image, unchanged."""
    if pushed.bundle is None:
        raise TypeError("not a bundle referrer")
    manifest = oci.get_manifest(target, pushed.repo, pushed.manifest.digest).json()
    annotations = manifest.get("annotations") or {}
    return push_bundle_referrer(
        target,
        dst_repo,
        dst_image,
        pushed.bundle,
        content=annotations.get(BUNDLE_CONTENT_ANNOTATION, "dsse-envelope"),
        predicate_type=annotations.get(BUNDLE_PREDICATE_TYPE_ANNOTATION, ""),
        created=annotations.get(CREATED_ANNOTATION),
    )


# --- reading back (test assertions) ---------------------------------------------------------


@dataclass(frozen=True)
class StoredLayer:
    media_type: str
    annotations: dict[str, str]
    data: bytes


def read_signature_layers(
    target: oci.Target, repo: str, digest: str, suffix: Literal["sig", "att"] = "sig"
) -> list[StoredLayer]:
    """The layers under ``sha256-<hex>.<suffix>``, blobs fetched and digest-checked."""
    found = oci.client(target).find_manifest(repo, oci.signature_tag(digest, suffix))
    if found is None:
        return []
    return [
        StoredLayer(
            entry["mediaType"],
            dict(entry.get("annotations") or {}),
            oci.get_blob(target, repo, entry["digest"]),
        )
        for entry in found.json()["layers"]
    ]


def read_referrers(target: oci.Target, repo: str, digest: str) -> list[dict[str, Any]]:
    """The descriptors in the fallback index ``sha256-<hex>`` (empty when there is none)."""
    found = oci.client(target).find_manifest(repo, oci.referrers_tag(digest))
    return list(found.json().get("manifests", [])) if found else []


def read_bundle(target: oci.Target, repo: str, referrer_digest: str) -> dict[str, Any]:
    """The Sigstore bundle stored in a referrer manifest."""
    manifest = oci.get_manifest(target, repo, referrer_digest).json()
    (layer,) = manifest["layers"]
    bundle: dict[str, Any] = json.loads(oci.get_blob(target, repo, layer["digest"]))
    return bundle
