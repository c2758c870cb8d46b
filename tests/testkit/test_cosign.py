"""testkit.cosign against a real registry and the private Sigstore authority.

Each test pushes a real image, stores cosign material for it, and reads it back
from the registry at the documented place, checking the bytes a verifier
will see: media types, annotations, payloads, and that the signatures verify
(with ``cryptography`` directly, or with the real sigstore-python Verifier).
"""

from __future__ import annotations

import base64
import json

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sigstore.errors import VerificationError as SigstoreVerificationError
from sigstore.verify import policy

from gate.signing import KeyKind, Signer, generate_key_pair, pae, verify_signature
from testkit import attestations as att
from testkit import cosign, oci
from testkit.plugin_sigstore import GITHUB_ISSUER, to_bundle
from testkit.registry import Registry
from testkit.sigstore_authority import Authority, GitHubClaims

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(generate_key_pair().private_key)


@pytest.fixture
def keyless(sigstore_authority: Authority, github_claims: GitHubClaims) -> cosign.Keyless:
    return cosign.Keyless.github_workflow(sigstore_authority, github_claims)


@pytest.fixture
def identity(github_claims: GitHubClaims) -> policy.Identity:
    return policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER)


def _cert_key(pem: str) -> ec.EllipticCurvePublicKey:
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


# --- payloads ------------------------------------------------------------------------------


def test_simple_signing_payload_is_byte_exact() -> None:
    digest = "sha256:" + "ab" * 32
    assert cosign.simple_signing_payload("reg.example/app", digest) == (
        b'{"critical":{"identity":{"docker-reference":"reg.example/app"},'
        b'"image":{"docker-manifest-digest":"sha256:' + b"ab" * 32 + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    with_optional = cosign.simple_signing_payload("r", digest, {"k": "v"})
    assert with_optional.endswith(b'"optional":{"k":"v"}}')


def test_needs_exactly_one_signer(registry: Registry, repo_name: str, signer: Signer) -> None:
    with pytest.raises(TypeError):
        cosign.sign_image_legacy(registry, repo_name, "sha256:" + "0" * 64)
    with pytest.raises(TypeError):
        cosign.signature_layer(b"x", key=signer, keyless=object())  # type: ignore[arg-type]


# --- legacy .sig -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KeyKind))
def test_key_signature_layer(registry: Registry, repo_name: str, kind: KeyKind) -> None:
    pair = generate_key_pair(kind, rsa_bits=2048)
    image = oci.push_image(registry, repo_name, "v1", seed=kind.value)
    pushed = cosign.sign_image_legacy(registry, repo_name, image.digest, key=pair)
    assert pushed.tag == f"sha256-{image.hex}.sig"
    assert pushed.tag in oci.list_tags(registry, repo_name)

    manifest = oci.get_manifest(registry, repo_name, pushed.tag)
    assert manifest.media_type == oci.OCI_MANIFEST
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest)
    assert layer.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer.annotations) == {"dev.cosignproject.cosign/signature"}
    payload = json.loads(layer.data)
    assert payload["critical"]["image"]["docker-manifest-digest"] == image.digest
    assert payload["critical"]["identity"]["docker-reference"] == registry.ref(repo_name)
    assert payload["critical"]["type"] == "cosign container image signature"
    sig = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])
    verify_signature(pair.public_key, sig, layer.data)


def test_signatures_accumulate_and_go_to_signature_repo(
    registry: Registry, repo_name: str, signer: Signer
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    other = Signer(generate_key_pair().private_key)
    cosign.sign_image_legacy(registry, repo_name, image.digest, key=signer)
    cosign.sign_image_legacy(registry, repo_name, image.digest, key=other)
    layers = cosign.read_signature_layers(registry, repo_name, image.digest)
    assert len(layers) == 2
    sigs_repo = f"{repo_name}-signatures"
    pushed = cosign.sign_image_legacy(
        registry, repo_name, image.digest, key=signer, signature_repo=sigs_repo
    )
    assert pushed.repo == sigs_repo
    assert len(cosign.read_signature_layers(registry, sigs_repo, image.digest)) == 1


def test_keyless_signature_layer(
    registry: Registry, repo_name: str, keyless: cosign.Keyless, sigstore_authority: Authority
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    cosign.sign_image_legacy(registry, repo_name, image.digest, keyless=keyless)
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest)
    ann = layer.annotations
    assert set(ann) >= {
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
    }
    cert = x509.load_pem_x509_certificate(ann["dev.sigstore.cosign/certificate"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert keyless.identity in san.get_values_for_type(x509.UniformResourceIdentifier)
    chain = x509.load_pem_x509_certificates(ann["dev.sigstore.cosign/chain"].encode())
    assert chain[-1] == sigstore_authority.root_certificate
    sig = base64.b64decode(ann["dev.cosignproject.cosign/signature"])
    _cert_key(ann["dev.sigstore.cosign/certificate"]).verify(
        sig, layer.data, ec.ECDSA(hashes.SHA256())
    )
    rekor = json.loads(ann["dev.sigstore.cosign/bundle"])
    assert set(rekor) == {"SignedEntryTimestamp", "Payload"}
    body = json.loads(base64.b64decode(rekor["Payload"]["body"]))
    assert body["kind"] == "hashedrekord"
    import hashlib

    assert body["spec"]["data"]["hash"]["value"] == hashlib.sha256(layer.data).hexdigest()


# --- legacy .att -----------------------------------------------------------------------------


def test_key_attestation_layer(registry: Registry, repo_name: str, signer: Signer) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    predicate = att.slsa_provenance_v1()
    pushed = cosign.attest_image_legacy(
        registry, repo_name, image.digest, att.SLSA_PROVENANCE_V1, predicate, key=signer
    )
    assert pushed.tag == f"sha256-{image.hex}.att"
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest, "att")
    assert layer.media_type == "application/vnd.dsse.envelope.v1+json"
    assert layer.annotations == {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": "https://slsa.dev/provenance/v1",
    }
    envelope = json.loads(layer.data)
    assert list(envelope) == ["payloadType", "payload", "signatures"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == ""
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["subject"][0]["digest"] == {"sha256": image.hex}
    assert statement["predicate"] == predicate
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    verify_signature(signer.public_key, sig, pae("application/vnd.in-toto+json", payload))


def test_key_attestation_from_statement_v01(
    registry: Registry, repo_name: str, signer: Signer
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    stmt = att.provenance_statement(
        [att.subject(registry.ref(repo_name), image.digest)], slsa_version="v0.2"
    )
    cosign.attest_image_legacy(
        registry, repo_name, image.digest, att.SLSA_PROVENANCE_V02, statement=stmt, key=signer
    )
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest, "att")
    assert layer.annotations["predicateType"] == "https://slsa.dev/provenance/v0.2"
    assert json.loads(base64.b64decode(json.loads(layer.data)["payload"])) == stmt


def test_keyless_attestation_layer(
    registry: Registry, repo_name: str, keyless: cosign.Keyless
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    cosign.attest_image_legacy(
        registry, repo_name, image.digest, att.VSA_V1, {"verificationResult": "PASSED"},
        keyless=keyless,
    )  # fmt: skip
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest, "att")
    assert layer.annotations["dev.cosignproject.cosign/signature"] == ""
    assert layer.annotations["predicateType"] == att.VSA_V1
    envelope = json.loads(layer.data)
    payload = base64.b64decode(envelope["payload"])
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    _cert_key(layer.annotations["dev.sigstore.cosign/certificate"]).verify(
        sig, pae(envelope["payloadType"], payload), ec.ECDSA(hashes.SHA256())
    )
    body = json.loads(
        base64.b64decode(
            json.loads(layer.annotations["dev.sigstore.cosign/bundle"])["Payload"]["body"]
        )
    )
    assert body["kind"] in {"intoto", "dsse"}  # cosign <= 2 logs intoto 0.0.2


# --- bundles as referrers ---------------------------------------------------------------------


def _referrer(registry: Registry, repo: str, image: oci.Descriptor) -> dict:
    (entry,) = cosign.read_referrers(registry, repo, image.digest)
    return entry


def test_keyless_sign_bundle_is_a_referrer_sigstore_verifies(
    registry: Registry,
    repo_name: str,
    keyless: cosign.Keyless,
    sigstore_verifier,
    identity: policy.Identity,
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    pushed = cosign.sign_image_bundle(registry, repo_name, image, keyless=keyless)
    assert pushed.tag == f"sha256-{image.hex}"
    # The fallback index (distribution 2.8.2 has no referrers API).
    index = oci.get_manifest(registry, repo_name, pushed.tag)
    assert index.media_type == oci.OCI_INDEX
    entry = _referrer(registry, repo_name, image)
    assert entry["digest"] == pushed.manifest.digest
    assert entry["artifactType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert entry["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert (
        entry["annotations"]["dev.sigstore.bundle.predicateType"]
        == "https://sigstore.dev/cosign/sign/v1"
    )
    # The referrer manifest itself.
    manifest = oci.get_manifest(registry, repo_name, entry["digest"]).json()
    assert manifest["artifactType"] == cosign.BUNDLE_MEDIA_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert manifest["subject"]["digest"] == image.digest
    assert manifest["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert "org.opencontainers.image.created" in manifest["annotations"]
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == cosign.BUNDLE_MEDIA_TYPE
    # The bundle verifies with the real sigstore-python against the private root.
    bundle = cosign.read_bundle(registry, repo_name, entry["digest"])
    payload_type, payload = sigstore_verifier.verify_dsse(to_bundle(bundle), identity)
    assert payload_type == "application/vnd.in-toto+json"
    statement = json.loads(payload)
    assert statement["predicateType"] == "https://sigstore.dev/cosign/sign/v1"
    assert statement["subject"][0]["digest"] == {"sha256": image.hex}


def test_keyless_message_signature_bundle(
    registry: Registry,
    repo_name: str,
    keyless: cosign.Keyless,
    sigstore_verifier,
    identity: policy.Identity,
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    pushed = cosign.sign_image_bundle(
        registry, repo_name, image.digest, keyless=keyless, content="message-signature"
    )
    entry = _referrer(registry, repo_name, image)
    assert entry["annotations"]["dev.sigstore.bundle.content"] == "message-signature"
    bundle = cosign.read_bundle(registry, repo_name, entry["digest"])
    assert "messageSignature" in bundle
    sigstore_verifier.verify_artifact(pushed.payload, to_bundle(bundle), identity)
    assert json.loads(pushed.payload)["critical"]["image"]["docker-manifest-digest"] == (
        image.digest
    )


def test_keyless_provenance_bundle(
    registry: Registry,
    repo_name: str,
    keyless: cosign.Keyless,
    sigstore_verifier,
    identity: policy.Identity,
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    cosign.sign_image_bundle(registry, repo_name, image, keyless=keyless)
    stmt = att.provenance_statement([att.subject(registry.ref(repo_name), image.digest)])
    cosign.attest_image_bundle(
        registry, repo_name, image, att.SLSA_PROVENANCE_V1, statement=stmt, keyless=keyless
    )
    entries = cosign.read_referrers(registry, repo_name, image.digest)
    kinds = sorted(e["annotations"]["dev.sigstore.bundle.predicateType"] for e in entries)
    assert kinds == ["https://sigstore.dev/cosign/sign/v1", "https://slsa.dev/provenance/v1"]
    (prov,) = [
        e for e in entries if "slsa" in e["annotations"]["dev.sigstore.bundle.predicateType"]
    ]
    bundle = cosign.read_bundle(registry, repo_name, prov["digest"])
    _, payload = sigstore_verifier.verify_dsse(to_bundle(bundle), identity)
    assert json.loads(payload) == stmt


def test_key_bundles(registry: Registry, repo_name: str, signer: Signer) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    pushed = cosign.sign_image_bundle(registry, repo_name, image, key=signer)
    bundle = cosign.read_bundle(registry, repo_name, pushed.manifest.digest)
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": cosign.public_key_hint(signer)},
        "tlogEntries": [],
    }
    env = bundle["dsseEnvelope"]
    payload = base64.b64decode(env["payload"])
    verify_signature(
        signer.public_key,
        base64.b64decode(env["signatures"][0]["sig"]),
        pae(env["payloadType"], payload),
    )
    msg = cosign.sign_image_bundle(
        registry, repo_name, image, key=signer, content="message-signature"
    )
    verify_signature(signer.public_key, msg.signature, msg.payload)
    assert len(cosign.read_referrers(registry, repo_name, image.digest)) == 2


# --- forgeries ---------------------------------------------------------------------------------


def test_forgery_signature_over_another_digest(
    registry: Registry, repo_name: str, signer: Signer
) -> None:
    image = oci.push_image(registry, repo_name, "v1", seed="a")
    other = oci.push_image(registry, repo_name, "v2", seed="b")
    cosign.sign_image_legacy(
        registry, repo_name, image.digest, key=signer,
        forgery=cosign.Forgery(signed_digest=other.digest),
    )  # fmt: skip
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest)
    # A genuine signature, over a payload that names the other image.
    verify_signature(
        signer.public_key,
        base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"]),
        layer.data,
    )
    assert json.loads(layer.data)["critical"]["image"]["docker-manifest-digest"] == other.digest


def test_forgery_tampered_payloads(
    registry: Registry, repo_name: str, signer: Signer, keyless: cosign.Keyless,
    sigstore_verifier, identity: policy.Identity,
) -> None:  # fmt: skip
    image = oci.push_image(registry, repo_name, "v1")
    tamper = cosign.Forgery(tamper_payload=True)
    cosign.sign_image_legacy(registry, repo_name, image.digest, key=signer, forgery=tamper)
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest)
    assert json.loads(layer.data)["optional"] == {"tampered": "after-signing"}
    with pytest.raises(InvalidSignature):
        signer.public_key.verify(  # type: ignore[call-arg]
            base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"]),
            layer.data,
            ec.ECDSA(hashes.SHA256()),
        )
    att_pushed = cosign.attest_image_legacy(
        registry, repo_name, image.digest, att.VSA_V1, {"a": 1}, key=signer, forgery=tamper
    )
    assert json.loads(att_pushed.payload)["predicate"]["tampered"] == "after-signing"
    with pytest.raises(InvalidSignature):
        signer.public_key.verify(  # type: ignore[call-arg]
            att_pushed.signature,
            pae("application/vnd.in-toto+json", att_pushed.payload),
            ec.ECDSA(hashes.SHA256()),
        )
    bundle = cosign.sign_image_bundle(registry, repo_name, image, keyless=keyless, forgery=tamper)
    assert bundle.bundle is not None
    with pytest.raises(SigstoreVerificationError):
        sigstore_verifier.verify_dsse(to_bundle(bundle.bundle), identity)


def test_forgery_copied_from_another_image(
    registry: Registry, repo_name: str, signer: Signer, keyless: cosign.Keyless
) -> None:
    src = oci.push_image(registry, repo_name, "v1", seed="src")
    dst_repo = f"{repo_name}-victim"
    dst = oci.push_image(registry, dst_repo, "v1", seed="dst")
    cosign.sign_image_legacy(registry, repo_name, src.digest, key=signer)
    cosign.attest_image_legacy(
        registry, repo_name, src.digest, att.VSA_V1, {"a": 1}, keyless=keyless
    )
    cosign.copy_signatures(registry, repo_name, src.digest, dst_repo, dst.digest, "sig")
    cosign.copy_signatures(registry, repo_name, src.digest, dst_repo, dst.digest, "att")
    (sig_layer,) = cosign.read_signature_layers(registry, dst_repo, dst.digest, "sig")
    assert sig_layer == cosign.read_signature_layers(registry, repo_name, src.digest, "sig")[0]
    assert json.loads(sig_layer.data)["critical"]["image"]["docker-manifest-digest"] == src.digest
    (att_layer,) = cosign.read_signature_layers(registry, dst_repo, dst.digest, "att")
    statement = json.loads(base64.b64decode(json.loads(att_layer.data)["payload"]))
    assert statement["subject"][0]["digest"] == {"sha256": src.hex}

    pushed = cosign.sign_image_bundle(registry, repo_name, src, keyless=keyless)
    cosign.copy_referrer(registry, pushed, dst_repo, dst)
    (entry,) = cosign.read_referrers(registry, dst_repo, dst.digest)
    manifest = oci.get_manifest(registry, dst_repo, entry["digest"]).json()
    assert manifest["subject"]["digest"] == dst.digest
    bundle = cosign.read_bundle(registry, dst_repo, entry["digest"])
    assert bundle == pushed.bundle
    payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert payload["subject"][0]["digest"] == {"sha256": src.hex}


def test_ed25519ph_key_signature(registry: Registry, repo_name: str) -> None:
    # What cosign >= 2.5 writes for an Ed25519 key file.
    pair = generate_key_pair(KeyKind.ED25519)
    image = oci.push_image(registry, repo_name, "v1")
    cosign.sign_image_legacy(
        registry, repo_name, image.digest, key=Signer(pair.private_key, ed25519ph=True)
    )
    (layer,) = cosign.read_signature_layers(registry, repo_name, image.digest)
    sig = base64.b64decode(layer.annotations["dev.cosignproject.cosign/signature"])
    verify_signature(pair.public_key, sig, layer.data, ed25519ph=True)
