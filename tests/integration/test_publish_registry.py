"""``gate publish`` against the real registry (distribution 2.8.2).

Allow: the artifact has Flux's media types and annotations, holds exactly the
pinned manifests ``gate verify`` writes, and its cosign legacy signature
verifies with ``gate verify-image --key`` and by a direct check of the
simple-signing payload. Deny, a wrong password, no key: nothing is pushed.
The same input twice gives the same digest, and the signature is not piled up.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.flux import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    MANIFESTS_FILE,
    POLICY_ANNOTATION,
    REVISION_ANNOTATION,
    SIGNATURE_ANNOTATION,
    SIMPLESIGNING,
    SOURCE_ANNOTATION,
    unpack_tar_gz,
)
from gate.policy import load_policy
from gate.signing import KeyPair, generate_key_pair, load_public_key, verify_signature
from testkit import cosign, oci
from testkit.registry import Registry
from testkit.sshkeys import SshKeyFactory
from tests.unit.helpers import deployment, write_policy, write_source

pytestmark = pytest.mark.integration

PASSWORD = "publish-pw"
SOURCE_URL = "https://git.example.com/acme/deploy.git"


@dataclass
class World:
    registry: Registry
    repo: str
    tmp: Path
    ci: KeyPair
    gate_key: KeyPair

    @property
    def target_repo(self) -> str:
        return f"{self.repo}-flux"

    def target(self, tag: str = "prod") -> str:
        return f"oci://{self.registry.host}/{self.target_repo}:{tag}"

    def signed_image(self, tag: str) -> str:
        img = oci.push_image(self.registry, self.repo, tag, seed=uuid.uuid4().hex)
        cosign.sign_image_legacy(self.registry, self.repo, img.digest, key=self.ci)
        return self.registry.ref(self.repo, tag)

    def policy(self, *, publish: bool = True) -> Path:
        spec: dict[str, Any] = {
            "keys": {"ci": {"publicKey": self.ci.public_pem().decode()}},
            "images": [{"match": [f"{self.registry.host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }
        if publish:
            spec["output"] = {"publish": {"key": "publish.key"}}
        return write_policy(self.tmp / "policy.yaml", spec, name="flux")

    def source(self, *images: str, git: bool = True) -> Path:
        src = write_source(self.tmp / f"src-{uuid.uuid4().hex[:6]}", deployment("app", *images))
        if git:
            _git(src, "init", "-q", "-b", "main")
            _git(src, "add", ".")
            _git(src, "commit", "-q", "-m", "deploy")
        return src

    def tags(self) -> list[str]:
        try:
            return oci.list_tags(self.registry, self.target_repo)
        except Exception:  # the repository does not exist: nothing was pushed
            return []


def _git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def w(registry: Registry, repo_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    world = World(registry, repo_name, tmp_path, generate_key_pair(), generate_key_pair())
    (tmp_path / "publish.key").write_bytes(world.gate_key.private_pem(PASSWORD.encode()))
    (tmp_path / "publish.pub").write_bytes(world.gate_key.public_pem())
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", PASSWORD)
    return world


def _publish(w: World, src: Path, *extra: str, tag: str = "prod") -> int:
    return main(["publish", str(src), "--policy", str(w.policy()), "--to", w.target(tag), *extra])


def test_allow_publishes_the_pinned_manifests_signed(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    image = w.signed_image("v1")
    src = w.source(image)
    commit = _git(src, "rev-parse", "HEAD")
    pinned = w.tmp / "pinned.yaml"
    assert main(["verify", str(src), "--policy", str(w.policy()), "--manifests", str(pinned)]) == 0
    capsys.readouterr()

    report = w.tmp / "report.json"
    assert _publish(w, src, "--source", SOURCE_URL, "--report", str(report)) == 0
    out = capsys.readouterr().out.strip()
    ref, _, digest = out.rpartition("@")
    assert ref == f"{w.registry.host}/{w.target_repo}:prod"

    # The tag names the artifact, with Flux's media types and annotations.
    fetched = oci.get_manifest(w.registry, w.target_repo, "prod")
    assert oci.sha256_digest(fetched.data) == digest
    manifest = fetched.json()
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == FLUX_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [FLUX_CONTENT]
    annotations = manifest["annotations"]
    assert annotations[SOURCE_ANNOTATION] == SOURCE_URL
    assert annotations[REVISION_ANNOTATION] == f"main@sha1:{commit}"
    assert annotations[POLICY_ANNOTATION] == load_policy(w.policy()).digest

    # Inside: exactly the pinned manifests gate verify writes.
    layer = oci.get_blob(w.registry, w.target_repo, manifest["layers"][0]["digest"])
    files = unpack_tar_gz(layer)
    assert files == {MANIFESTS_FILE: pinned.read_bytes()}
    assert "@sha256:" in pinned.read_text()

    # The gate's own image verification accepts the signature, with the public key.
    host = w.registry.host
    pub = str(w.tmp / "publish.pub")
    argv = ["verify-image", f"{ref}@{digest}", "--key", pub, "--unsafe-plain-http", host]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"{ref}@{digest}"

    # And directly: the cosign legacy layout, payload naming the digest, signature over it.
    sig = oci.get_manifest(w.registry, w.target_repo, oci.signature_tag(digest)).json()
    (sig_layer,) = sig["layers"]
    assert sig_layer["mediaType"] == SIMPLESIGNING
    payload = oci.get_blob(w.registry, w.target_repo, sig_layer["digest"])
    doc = json.loads(payload)
    assert doc["critical"]["image"]["docker-manifest-digest"] == digest
    assert doc["critical"]["type"] == "cosign container image signature"
    assert doc["critical"]["identity"]["docker-reference"] == f"{host}/{w.target_repo}"
    signature = base64.b64decode(sig_layer["annotations"][SIGNATURE_ANNOTATION])
    verify_signature(load_public_key(w.gate_key.public_pem()), signature, payload)

    # The report records the publish.
    findings = json.loads(report.read_text())["findings"]
    assert {"check": "publish", "outcome": "pass", "reason": "published"}.items() <= next(
        f for f in findings if f["check"] == "publish"
    ).items()


def test_same_input_twice_same_digest_one_signature(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    src = w.source(w.signed_image("v1"))
    assert _publish(w, src, "--source", SOURCE_URL) == 0
    first = capsys.readouterr().out.strip().rpartition("@")[2]
    assert _publish(w, src, "--source", SOURCE_URL) == 0
    second = capsys.readouterr().out.strip().rpartition("@")[2]
    assert first == second
    sig = oci.get_manifest(w.registry, w.target_repo, oci.signature_tag(first)).json()
    assert len(sig["layers"]) == 1  # a valid signature by this key is not added twice
    # Another tag for the same manifests: the same artifact.
    assert _publish(w, src, "--source", SOURCE_URL, tag="staging") == 0
    assert capsys.readouterr().out.strip().rpartition("@")[2] == first


def test_deny_pushes_nothing(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    unsigned = oci.push_image(w.registry, w.repo, "unsigned", seed=uuid.uuid4().hex)
    del unsigned
    src = w.source(w.registry.ref(w.repo, "unsigned"))
    report = w.tmp / "report.json"
    assert _publish(w, src, "--report", str(report), "--format", "json") == 1
    assert json.loads(capsys.readouterr().out)["decision"] == "deny"
    assert w.tags() == []
    assert not any(f["check"] == "publish" for f in json.loads(report.read_text())["findings"])


def test_wrong_password_exit_2_before_anything(
    w: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = w.source(w.signed_image("v1"))
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", "wrong")
    report = w.tmp / "report.json"
    assert _publish(w, src, "--report", str(report)) == 2
    assert "password" in capsys.readouterr().err.lower()
    assert w.tags() == []
    assert not report.exists()  # nothing was verified either
    monkeypatch.delenv("GATE_PUBLISH_KEY_PASSWORD")
    assert _publish(w, src) == 2
    assert "GATE_PUBLISH_KEY_PASSWORD" in capsys.readouterr().err
    assert w.tags() == []


def test_no_key_configured_is_refused(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    src = w.source(w.signed_image("v1"))
    argv = ["publish", str(src), "--policy", str(w.policy(publish=False)), "--to", w.target()]
    assert main(argv) == 2
    assert "spec.output.publish.key" in capsys.readouterr().err
    assert w.tags() == []


def test_without_git_and_a_named_revision(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    src = w.source(w.signed_image("v1"), git=False)
    assert _publish(w, src) == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    manifest = oci.get_manifest(w.registry, w.target_repo, digest).json()
    # No repository, no commit: no source annotation and no invented revision.
    assert SOURCE_ANNOTATION not in manifest["annotations"]
    assert REVISION_ANNOTATION not in manifest["annotations"]


def test_tag_revision_and_origin(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    src = w.source(w.signed_image("v1"))
    _git(src, "tag", "v1.4.0")
    _git(src, "remote", "add", "origin", "https://bot:s3cret@git.example.com/acme/deploy.git")
    commit = _git(src, "rev-parse", "HEAD")
    assert _publish(w, src, "--revision", "v1.4.0") == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    annotations = oci.get_manifest(w.registry, w.target_repo, digest).json()["annotations"]
    assert annotations[REVISION_ANNOTATION] == f"v1.4.0@sha1:{commit}"
    assert annotations[SOURCE_ANNOTATION] == SOURCE_URL  # the credentials are not published


def test_token_registry_with_credentials(
    token_registry: Registry,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gate_key = generate_key_pair()
    (tmp_path / "publish.key").write_bytes(gate_key.private_pem(PASSWORD.encode()))
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", PASSWORD)
    creds = token_registry.credentials
    assert creds is not None
    user, password = creds
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (tmp_path / "auth.json").write_text(
        json.dumps({"auths": {token_registry.host: {"auth": auth}}})
    )
    spec: dict[str, Any] = {
        "images": [{"match": ["docker.io/**"], "exempt": "test"}],
        "registries": [
            {
                "host": token_registry.host,
                "insecure": True,
                "credentials": str(tmp_path / "auth.json"),
            }
        ],
        "output": {"publish": {"key": "publish.key"}},
    }
    policy = write_policy(tmp_path / "policy.yaml", spec, name="flux")
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    src = write_source(tmp_path / "src", {**config_map, "data": {"a": "b"}})
    target = f"oci://{token_registry.host}/{repo_name}:prod"
    assert main(["publish", str(src), "--policy", str(policy), "--to", target]) == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    assert oci.sha256_digest(oci.get_manifest(token_registry, repo_name, "prod").data) == digest


@pytest.mark.parametrize("fmt", ["sha1", "sha256"])
def test_signed_release_tag_is_published_and_an_untrusted_one_is_not(
    registry: Registry,
    repo_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    ssh_keys: SshKeyFactory,
    fmt: str,
) -> None:
    from testkit.gitrepo import SshSigner, release_repo

    trusted, other = ssh_keys("release"), ssh_keys("mallory")
    gate_key = generate_key_pair()
    (tmp_path / "publish.key").write_bytes(gate_key.private_pem(PASSWORD.encode()))
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", PASSWORD)
    spec: dict[str, Any] = {
        "keys": {"release": {"ssh": trusted.public_line}},
        "source": {"git": {"require": "tag", "tags": ["v*"], "signers": ["release"]}},
        "images": [{"match": ["registry.example.com/**"], "exempt": "test image"}],
        "registries": [{"host": registry.host, "insecure": True}],
        "output": {"publish": {"key": "publish.key"}},
    }
    policy = str(write_policy(tmp_path / "policy.yaml", spec, name="flux"))

    good = release_repo(tmp_path / "good", SshSigner(trusted), object_format=fmt)
    commit = _git(good.path, "rev-parse", "v1.0.0^{commit}")
    target = f"oci://{registry.host}/{repo_name}:prod"
    argv = ["publish", str(good.path / "deploy"), "--policy", policy, "--to", target]
    assert main([*argv, "--revision", "v1.0.0", "--source", SOURCE_URL]) == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    annotations = oci.get_manifest(registry, repo_name, "prod").json()["annotations"]
    assert annotations[REVISION_ANNOTATION] == f"v1.0.0@{fmt}:{commit}"

    bad = release_repo(tmp_path / "bad", SshSigner(other), object_format=fmt)
    bad_target = f"oci://{registry.host}/{repo_name}:bad"
    argv = ["publish", str(bad.path / "deploy"), "--policy", policy, "--to", bad_target]
    assert main([*argv, "--revision", "v1.0.0"]) == 1
    assert "untrusted" in capsys.readouterr().err
    assert set(oci.list_tags(registry, repo_name)) == {"prod", oci.signature_tag(digest)}
