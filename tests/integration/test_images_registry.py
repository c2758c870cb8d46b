"""Image signatures end to end: ``gate verify`` against the real registry (distribution 2.8.2).

Every form cosign writes (legacy ``.sig`` key-based and keyless, Sigstore
bundle referrers in the tag-schema fallback), signed by the test authority;
each genuine case is allowed and pinned, each forgery denied for its own
reason code.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from gate.cli import main
from gate.engine import Engine, GateRequest, SourceInfo, Verifiers
from gate.images import CosignImageVerifier
from gate.policy import load_policy
from gate.signing import KeyKind, KeyPair, generate_key_pair
from testkit import cosign, oci
from testkit.registry import Registry
from testkit.sigstore_authority import FORGERIES, Authority, GitHubClaims
from tests.unit.helpers import deployment, write_policy, write_source

pytestmark = pytest.mark.integration

ISSUER = "https://token.actions.githubusercontent.com"
CLAIMS = GitHubClaims.for_workflow()


@pytest.fixture(scope="module")
def keys() -> dict[str, KeyPair]:
    return {
        "ci": generate_key_pair(),
        "ops": generate_key_pair(KeyKind.ED25519),
        "other": generate_key_pair(),
    }


@dataclass
class Result:
    code: int
    report: dict[str, Any]
    manifests: str | None

    def reasons(self, check: str = "image.signature") -> list[str]:
        return [
            f["reason"]
            for f in self.report["findings"]
            if f["check"] == check and f["outcome"] == "fail"
        ]


@dataclass
class World:
    registry: Registry
    authority: Authority
    keys: dict[str, KeyPair]
    tmp: Path
    repo: str

    def image(self, seed: str | None = None, repo: str | None = None) -> oci.Descriptor:
        return oci.push_image(
            self.registry, repo or self.repo, "1.0", seed=seed or uuid.uuid4().hex
        )

    def ref(self, desc: oci.Descriptor | None = None, repo: str | None = None) -> str:
        return self.registry.ref(repo or self.repo, "1.0")

    def keyless(self, **kw: Any) -> cosign.Keyless:
        return cosign.Keyless(self.authority, CLAIMS.identity, ISSUER, CLAIMS, **kw)

    def policy(self, signers: list[str], threshold: int = 1, **rule: Any) -> Path:
        spec: dict[str, Any] = {
            "keys": {
                "ci": {"publicKey": self.keys["ci"].public_pem().decode()},
                "ops": {"publicKey": self.keys["ops"].public_pem().decode()},
                "ci-again": {"publicKey": self.keys["ci"].public_pem().decode()},
                "release": {"keyless": {"issuer": ISSUER, "subject": CLAIMS.identity}},
                "release-glob": {
                    "keyless": {"issuer": ISSUER, "subject": "https://github.com/acme/**"}
                },
            },
            "trustRoots": {"sigstore": str(self.authority.trusted_root_path)},
            "images": [
                {
                    "match": [f"{self.registry.host}/**"],
                    "signatures": {"signers": signers, "threshold": threshold},
                    **rule,
                }
            ],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }
        return write_policy(self.tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml", spec)

    def verify(self, images: list[str], policy: Path) -> Result:
        src = write_source(self.tmp / f"src-{uuid.uuid4().hex[:6]}", deployment("app", *images))
        report = self.tmp / "report.json"
        out = self.tmp / "out.yaml"
        code = main(
            [
                "verify",
                str(src),
                "--policy",
                str(policy),
                "--report",
                str(report),
                "--manifests",
                str(out),
            ]
        )
        return Result(
            code, json.loads(report.read_text()), out.read_text() if out.exists() else None
        )


@pytest.fixture
def world(
    registry: Registry,
    sigstore_authority: Authority,
    keys: dict[str, KeyPair],
    tmp_path: Path,
    repo_name: str,
) -> World:
    return World(registry, sigstore_authority, keys, tmp_path, repo_name)


def assert_allowed_and_pinned(w: World, result: Result, digest: str) -> None:
    assert result.code == 0, result.report["findings"]
    assert result.manifests is not None
    images = [
        c["image"]
        for d in yaml.safe_load_all(result.manifests)
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [f"{w.ref()}@{digest}"]
    assert result.report["images"][0]["digest"] == digest


def assert_denied(result: Result, reason: str) -> None:
    assert result.code == 1, result.report["findings"]
    assert result.manifests is None
    assert result.reasons() == [reason], result.report["findings"]


# --- genuine signatures: allowed and pinned ---------------------------------------------------

Sign = Callable[[World, oci.Descriptor], Any]

GENUINE: dict[str, tuple[str, Sign]] = {
    "legacy-key-ecdsa": ("ci", lambda w, d: cosign.sign_image_legacy(
        w.registry, w.repo, d.digest, key=w.keys["ci"])),
    "legacy-key-ed25519": ("ops", lambda w, d: cosign.sign_image_legacy(
        w.registry, w.repo, d.digest, key=w.keys["ops"])),
    "legacy-keyless": ("release", lambda w, d: cosign.sign_image_legacy(
        w.registry, w.repo, d.digest, keyless=w.keyless())),
    "bundle-key-dsse": ("ci", lambda w, d: cosign.sign_image_bundle(
        w.registry, w.repo, d, key=w.keys["ci"])),
    "bundle-key-message": ("ci", lambda w, d: cosign.sign_image_bundle(
        w.registry, w.repo, d, key=w.keys["ci"], content="message-signature")),
    "bundle-keyless-dsse": ("release", lambda w, d: cosign.sign_image_bundle(
        w.registry, w.repo, d, keyless=w.keyless())),
    "bundle-keyless-message": ("release-glob", lambda w, d: cosign.sign_image_bundle(
        w.registry, w.repo, d, keyless=w.keyless(), content="message-signature")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(GENUINE))
def test_genuine_signature_is_allowed_and_pinned(world: World, case: str) -> None:
    signer, sign = GENUINE[case]
    desc = world.image()
    sign(world, desc)
    result = world.verify([world.ref()], world.policy([signer]))
    assert_allowed_and_pinned(world, result, desc.digest)


def test_multi_arch_index_is_verified_at_the_index_digest(world: World) -> None:
    index = oci.push_index(world.registry, world.repo, "1.0", seed=uuid.uuid4().hex)
    cosign.sign_image_legacy(world.registry, world.repo, index.digest, key=world.keys["ci"])
    result = world.verify([world.ref()], world.policy(["ci"]))
    assert_allowed_and_pinned(world, result, index.digest)


def test_signature_repository(world: World) -> None:
    desc = world.image()
    sigs = f"{world.repo}-signatures"
    cosign.sign_image_legacy(
        world.registry, world.repo, desc.digest, key=world.keys["ci"], signature_repo=sigs
    )
    with_repo = world.policy(["ci"], signatureRepository=world.registry.ref(sigs))
    assert_allowed_and_pinned(world, world.verify([world.ref()], with_repo), desc.digest)
    # Without the rule's signatureRepository the image's own repository has nothing.
    assert_denied(world.verify([world.ref()], world.policy(["ci"])), "unsigned")


def test_one_allowed_one_denied_in_one_run(world: World) -> None:
    signed = world.image(repo=world.repo)
    cosign.sign_image_legacy(world.registry, world.repo, signed.digest, key=world.keys["ci"])
    other_repo = f"{world.repo}-unsigned"
    oci.push_image(world.registry, other_repo, "1.0", seed=uuid.uuid4().hex)
    result = world.verify(
        [world.ref(), world.registry.ref(other_repo, "1.0")], world.policy(["ci"])
    )
    assert result.code == 1 and result.manifests is None
    outcomes = {f["subject"]: f["reason"] for f in result.report["findings"]
                if f["check"] == "image.signature"}  # fmt: skip
    assert outcomes == {
        world.ref(): "verified",
        world.registry.ref(other_repo, "1.0"): "unsigned",
    }


# --- forgeries: each denied for its own reason -------------------------------------------------


def test_unsigned(world: World) -> None:
    world.image()
    assert_denied(world.verify([world.ref()], world.policy(["ci", "release"])), "unsigned")


@pytest.mark.parametrize("form", ["legacy", "bundle"])
def test_other_key(world: World, form: str) -> None:
    desc = world.image()
    if form == "legacy":
        cosign.sign_image_legacy(world.registry, world.repo, desc.digest, key=world.keys["other"])
    else:
        cosign.sign_image_bundle(world.registry, world.repo, desc, key=world.keys["other"])
    assert_denied(world.verify([world.ref()], world.policy(["ci"])), "untrusted-signer")


def test_keyless_signature_for_a_key_signer(world: World) -> None:
    desc = world.image()
    cosign.sign_image_legacy(world.registry, world.repo, desc.digest, keyless=world.keyless())
    assert_denied(world.verify([world.ref()], world.policy(["ci"])), "untrusted-signer")


@pytest.mark.parametrize("form", ["legacy-key", "legacy-keyless", "bundle-key", "bundle-keyless"])
def test_signature_copied_from_another_image(world: World, form: str) -> None:
    source = world.image(repo=f"{world.repo}-src")
    src_repo = f"{world.repo}-src"
    target = world.image()
    signer = "ci" if form.endswith("key") else "release"
    who: dict[str, Any] = (
        {"key": world.keys["ci"]} if form.endswith("key") else {"keyless": world.keyless()}
    )
    if form.startswith("legacy"):
        cosign.sign_image_legacy(world.registry, src_repo, source.digest, **who)
        cosign.copy_signatures(world.registry, src_repo, source.digest, world.repo, target.digest)
    else:
        pushed = cosign.sign_image_bundle(world.registry, src_repo, source, **who)
        cosign.copy_referrer(world.registry, pushed, world.repo, target)
    assert_denied(world.verify([world.ref()], world.policy([signer])), "digest-mismatch")


@pytest.mark.parametrize("content", ["dsse-envelope", "message-signature"])
def test_bundle_signed_for_another_digest(world: World, content: str) -> None:
    desc = world.image()
    cosign.sign_image_bundle(
        world.registry,
        world.repo,
        desc,
        key=world.keys["ci"],
        content=content,  # type: ignore[arg-type]
        forgery=cosign.Forgery(signed_digest="sha256:" + "0" * 64),
    )
    assert_denied(world.verify([world.ref()], world.policy(["ci"])), "digest-mismatch")


KEYLESS_FORGERIES = {
    "other-identity": "identity-mismatch",
    "other-issuer": "issuer-mismatch",
    "expired-certificate": "certificate-expired",
    "integrated-outside-validity": "certificate-expired",
    "set-signed-by-other-key": "tlog-invalid",
    "sct-untrusted-log": "sct-invalid",
    "sct-over-other-data": "sct-invalid",
    "untrusted-ca": "untrusted-signer",
}


@pytest.mark.parametrize("form", ["legacy", "bundle"])
@pytest.mark.parametrize("forgery", sorted(KEYLESS_FORGERIES))
def test_keyless_forgery(world: World, forgery: str, form: str) -> None:
    desc = world.image()
    keyless = world.keyless(forgery=FORGERIES[forgery])
    if form == "legacy":
        cosign.sign_image_legacy(world.registry, world.repo, desc.digest, keyless=keyless)
    else:
        cosign.sign_image_bundle(world.registry, world.repo, desc, keyless=keyless)
    assert_denied(
        world.verify([world.ref()], world.policy(["release"])), KEYLESS_FORGERIES[forgery]
    )


@pytest.mark.parametrize("form", ["legacy-keyless", "bundle-keyless", "bundle-key"])
def test_payload_changed_after_signing(world: World, form: str) -> None:
    desc = world.image()
    tamper = cosign.Forgery(tamper_payload=True)
    if form == "legacy-keyless":
        cosign.sign_image_legacy(
            world.registry, world.repo, desc.digest, keyless=world.keyless(), forgery=tamper
        )
    elif form == "bundle-keyless":
        cosign.sign_image_bundle(
            world.registry, world.repo, desc, keyless=world.keyless(), forgery=tamper
        )
    else:
        cosign.sign_image_bundle(
            world.registry, world.repo, desc, key=world.keys["ci"], forgery=tamper
        )
    signer = "ci" if form == "bundle-key" else "release"
    assert_denied(world.verify([world.ref()], world.policy([signer])), "bad-signature")


def _legacy_keyless_layer(w: World, digest: str) -> oci.Layer:
    payload = cosign.simple_signing_payload(w.registry.ref(w.repo), digest)
    layer, _, _ = cosign.signature_layer(payload, keyless=w.keyless())
    return layer


def _with_bundle(layer: oci.Layer, bundle: dict[str, Any]) -> oci.Layer:
    annotations = dict(layer.annotations or {})
    annotations[cosign.BUNDLE_ANNOTATION] = json.dumps(bundle, separators=(",", ":"))
    return oci.Layer(layer.data, layer.media_type, annotations)


@pytest.mark.parametrize("field", ["integratedTime", "logIndex", "body", "SignedEntryTimestamp"])
def test_tampered_set(world: World, field: str) -> None:
    desc = world.image()
    layer = _legacy_keyless_layer(world, desc.digest)
    bundle = json.loads((layer.annotations or {})[cosign.BUNDLE_ANNOTATION])
    if field == "integratedTime":
        bundle["Payload"]["integratedTime"] -= 60
    elif field == "logIndex":
        bundle["Payload"]["logIndex"] += 1
    elif field == "body":
        body = json.loads(base64.b64decode(bundle["Payload"]["body"]))
        body["spec"]["data"]["hash"]["value"] = "0" * 64
        bundle["Payload"]["body"] = base64.b64encode(rfc8785.dumps(body)).decode()
    else:
        sig = bytearray(base64.b64decode(bundle["SignedEntryTimestamp"]))
        sig[-1] ^= 1
        bundle["SignedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    oci.push_signature_manifest(
        world.registry, world.repo, desc.digest, [_with_bundle(layer, bundle)]
    )
    assert_denied(world.verify([world.ref()], world.policy(["release"])), "tlog-invalid")


def test_set_from_another_log(world: World) -> None:
    """A well-formed SET, correctly signed, by a log the trust root does not list."""
    desc = world.image()
    layer = _legacy_keyless_layer(world, desc.digest)
    bundle = json.loads((layer.annotations or {})[cosign.BUNDLE_ANNOTATION])
    rogue = ec.generate_private_key(ec.SECP256R1())
    from gate.evidence.bundle import key_fingerprint

    log_id = base64.b64decode(key_fingerprint(rogue.public_key())).hex()
    payload = {**bundle["Payload"], "logID": log_id}
    canonical = rfc8785.dumps(
        {k: payload[k] for k in ("body", "integratedTime", "logID", "logIndex")}
    )
    set_sig = rogue.sign(canonical, ec.ECDSA(hashes.SHA256()))
    forged = {"SignedEntryTimestamp": base64.b64encode(set_sig).decode(), "Payload": payload}
    oci.push_signature_manifest(
        world.registry, world.repo, desc.digest, [_with_bundle(layer, forged)]
    )
    result = world.verify([world.ref()], world.policy(["release"]))
    assert_denied(result, "tlog-invalid")
    assert "does not list" in json.dumps(result.report["findings"])


def test_keyless_without_log_entry(world: World) -> None:
    desc = world.image()
    layer = _legacy_keyless_layer(world, desc.digest)
    annotations = {k: v for k, v in (layer.annotations or {}).items()
                   if k != cosign.BUNDLE_ANNOTATION}  # fmt: skip
    stripped = oci.Layer(layer.data, layer.media_type, annotations)
    oci.push_signature_manifest(world.registry, world.repo, desc.digest, [stripped])
    assert_denied(world.verify([world.ref()], world.policy(["release"])), "tlog-invalid")


# --- thresholds count distinct keys -------------------------------------------------------------


def test_threshold_two_distinct_keys(world: World) -> None:
    desc = world.image()
    cosign.sign_image_legacy(world.registry, world.repo, desc.digest, key=world.keys["ci"])
    two = world.policy(["ci", "ops"], threshold=2)
    assert_denied(world.verify([world.ref()], two), "threshold-not-met")
    cosign.sign_image_bundle(world.registry, world.repo, desc, key=world.keys["ops"])
    assert_allowed_and_pinned(world, world.verify([world.ref()], two), desc.digest)


def test_threshold_one_key_under_two_names_counts_once(world: World) -> None:
    desc = world.image()
    cosign.sign_image_legacy(world.registry, world.repo, desc.digest, key=world.keys["ci"])
    cosign.sign_image_bundle(world.registry, world.repo, desc, key=world.keys["ci"])
    same_key = world.policy(["ci", "ci-again"], threshold=2)
    assert_denied(world.verify([world.ref()], same_key), "threshold-not-met")


def test_threshold_one_certificate_for_two_keyless_entries_counts_once(world: World) -> None:
    desc = world.image()
    cosign.sign_image_legacy(world.registry, world.repo, desc.digest, keyless=world.keyless())
    both = world.policy(["release", "release-glob"], threshold=2)
    assert_denied(world.verify([world.ref()], both), "threshold-not-met")


# --- could not decide -------------------------------------------------------------------------


def test_registry_unreachable_is_exit_3(world: World, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = f"127.0.0.1:{port}"
    policy = write_policy(
        tmp_path / "p.yaml",
        {
            "keys": {"ci": {"publicKey": world.keys["ci"].public_pem().decode()}},
            "images": [{"match": [f"{host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": host, "insecure": True}],
        },
    )
    src = write_source(tmp_path / "src", deployment("app", f"{host}/app:1.0"))
    engine = Engine(load_policy(policy), Verifiers(images=CosignImageVerifier(deadline_s=3.0)))
    result = engine.run(GateRequest(SourceInfo(src)))
    assert result.exit_code == 3
    assert result.manifests is None
    fails = [f for f in result.report.findings if f.outcome == "fail"]
    assert [f.reason for f in fails] == ["registry-unreachable"]


def test_token_registry(token_registry: Registry, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    repo = f"t/token-{uuid.uuid4().hex[:8]}"
    desc = oci.push_image(token_registry, repo, "1.0", seed=uuid.uuid4().hex)
    cosign.sign_image_legacy(token_registry, repo, desc.digest, key=keys["ci"])
    policy = write_policy(
        tmp_path / "p.yaml",
        {
            "keys": {"ci": {"publicKey": keys["ci"].public_pem().decode()}},
            "images": [{"match": [f"{token_registry.host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": token_registry.host, "insecure": True}],
        },
    )
    ref = token_registry.ref(repo, "1.0")
    src = write_source(tmp_path / "src", deployment("app", ref))
    out = tmp_path / "out.yaml"
    code = main(["verify", str(src), "--policy", str(policy), "--manifests", str(out)])
    assert code == 0
    assert f"{ref}@{desc.digest}" in out.read_text()


def test_tag_at_digest_is_verified_at_the_digest_and_a_moved_tag_reported(world: World) -> None:
    old = world.image()
    cosign.sign_image_legacy(world.registry, world.repo, old.digest, key=world.keys["ci"])
    new = world.image()  # the tag now names an unsigned image
    pinned = f"{world.ref()}@{old.digest}"
    result = world.verify([pinned], world.policy(["ci"]))
    assert result.code == 0, result.report["findings"]
    assert result.manifests is not None and f"@{old.digest}" in result.manifests
    moved = [f for f in result.report["findings"] if f["reason"] == "tag-moved"]
    assert len(moved) == 1 and new.digest in moved[0]["detail"]
    # By tag alone the unsigned image is what would deploy: denied.
    assert_denied(world.verify([world.ref()], world.policy(["ci"])), "unsigned")
