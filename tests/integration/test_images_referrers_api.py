"""The referrers-API path and fault injection, with an in-process fake registry.

distribution 2.8.2 has no referrers API, so the path a modern registry takes
(``GET /v2/<name>/referrers/<digest>``) runs against this fake, served through
``httpx.MockTransport``; the same fake injects 5xx/429 bursts, time-outs,
oversized and wrong bodies. Whatever goes wrong, the decision is never an allow
unless genuine evidence was read in full.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate.engine import Engine, GateRequest, GateResult, SourceInfo, Verifiers
from gate.images import CosignImageVerifier
from gate.policy import load_policy
from gate.signing import IN_TOTO_PAYLOAD_TYPE, KeyPair, Signer, generate_key_pair, sign_envelope
from testkit import cosign
from testkit.attestations import statement_bytes
from tests.unit.helpers import deployment, write_policy, write_source

HOST = "registry.test"
REPO = "acme/app"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class FakeRegistry:
    """Manifests and blobs by digest, tags, and a referrers API (switchable)."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    referrers_api: bool = True
    requests: list[str] = field(default_factory=list)
    #: Called first; a response it returns replaces the normal answer.
    fault: Callable[[httpx.Request], httpx.Response | None] | None = None

    def blob(self, data: bytes, media_type: str = "application/octet-stream") -> dict[str, Any]:
        d = _digest(data)
        self.blobs[d] = data
        return {"mediaType": media_type, "digest": d, "size": len(data)}

    def manifest(self, doc: dict[str, Any], tag: str | None = None) -> dict[str, Any]:
        raw = _json(doc)
        d = _digest(raw)
        self.manifests[d] = (raw, doc["mediaType"])
        if tag is not None:
            self.tags[tag] = d
        out = {"mediaType": doc["mediaType"], "digest": d, "size": len(raw)}
        if "artifactType" in doc:
            out["artifactType"] = doc["artifactType"]
        if "annotations" in doc:
            out["annotations"] = doc["annotations"]
        return out

    def image(self, tag: str, seed: str) -> dict[str, Any]:
        config = self.blob(_json({"seed": seed}), "application/vnd.oci.image.config.v1+json")
        layer = self.blob(seed.encode(), "application/vnd.oci.image.layer.v1.tar+gzip")
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
        return self.manifest(doc, tag)

    def referrer(self, subject: dict[str, Any], bundle: dict[str, Any]) -> dict[str, Any]:
        empty = self.blob(b"{}", "application/vnd.oci.empty.v1+json")
        layer = self.blob(_json(bundle), BUNDLE)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE,
            "config": empty,
            "layers": [layer],
            "subject": {k: subject[k] for k in ("mediaType", "digest", "size")},
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": cosign.COSIGN_SIGN_PREDICATE_TYPE,
            },
        }
        return self.manifest(doc)

    def _referrers_of(self, digest: str) -> list[dict[str, Any]]:
        out = []
        for d, (raw, media_type) in self.manifests.items():
            doc = json.loads(raw)
            if (doc.get("subject") or {}).get("digest") == digest:
                entry = {"mediaType": media_type, "digest": d, "size": len(raw)}
                for k in ("artifactType", "annotations"):
                    if k in doc:
                        entry[k] = doc[k]
                out.append(entry)
        return out

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if self.fault is not None:
            injected = self.fault(request)
            if injected is not None:
                return injected
        path = request.url.path
        if path == "/v2/":
            return httpx.Response(200, json={})
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs|referrers)/(.+)", path)
        if m is None or m.group(1) != REPO:
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
        kind, ref = m.group(2), m.group(3)
        if kind == "referrers":
            if not self.referrers_api:
                return httpx.Response(404, text="404 page not found\n")
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                     "manifests": self._referrers_of(ref)}  # fmt: skip
            return httpx.Response(200, content=_json(index), headers={"Content-Type": OCI_INDEX})
        if kind == "blobs":
            data = self.blobs.get(ref)
            if data is None:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
            return httpx.Response(200, content=data)
        digest = self.tags.get(ref, ref)
        found = self.manifests.get(digest)
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        raw, media_type = found
        return httpx.Response(
            200,
            content=raw,
            headers={"Content-Type": media_type, "Docker-Content-Digest": digest},
        )


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return generate_key_pair()


def key_bundle(key: KeyPair, digest: str) -> dict[str, Any]:
    signer = Signer(key.private_key)
    payload = statement_bytes(cosign.sign_statement_v3(digest))
    return cosign.key_bundle_dsse(sign_envelope(payload, IN_TOTO_PAYLOAD_TYPE, signer), signer)


@pytest.fixture
def fake(key: KeyPair) -> FakeRegistry:
    reg = FakeRegistry()
    image = reg.image("1.0", "genuine")
    reg.referrer(image, key_bundle(key, image["digest"]))
    return reg


def run(
    fake: FakeRegistry, key: KeyPair, tmp_path: Path, *, deadline_s: float = 20.0
) -> GateResult:
    policy = write_policy(
        tmp_path / "policy.yaml",
        {
            "keys": {"ci": {"publicKey": key.public_pem().decode()}},
            "images": [{"match": [f"{HOST}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": HOST, "insecure": True}],
        },
    )
    src = write_source(tmp_path / "src", deployment("app", f"{HOST}/{REPO}:1.0"))
    verifier = CosignImageVerifier(
        transport=httpx.MockTransport(fake.handler), deadline_s=deadline_s
    )
    return Engine(load_policy(policy), Verifiers(images=verifier)).run(GateRequest(SourceInfo(src)))


def fail_reasons(result: GateResult) -> list[str]:
    return [f.reason for f in result.report.findings if f.outcome == "fail"]


def test_referrers_api_path_allows_and_pins(
    fake: FakeRegistry, key: KeyPair, tmp_path: Path
) -> None:
    result = run(fake, key, tmp_path)
    assert result.exit_code == 0, result.report.findings
    assert result.manifests is not None and f"@{fake.tags['1.0']}" in result.manifests
    assert any("/referrers/" in r for r in fake.requests)
    assert not any("/manifests/sha256-" in r and ".sig" not in r for r in fake.requests), (
        "the tag-schema fallback must not be used when the referrers API answers"
    )


def test_fallback_when_the_registry_has_no_referrers_api(
    fake: FakeRegistry, key: KeyPair, tmp_path: Path
) -> None:
    fake.referrers_api = False
    # Without the fallback index the bundle is invisible: unsigned, not an error.
    assert fail_reasons(run(fake, key, tmp_path)) == ["unsigned"]
    digest = fake.tags["1.0"]
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": fake._referrers_of(digest)}  # fmt: skip
    fake.manifest(index, "sha256-" + digest.split(":")[1])
    assert run(fake, key, tmp_path).exit_code == 0


def test_referrer_naming_another_subject_is_ignored(key: KeyPair, tmp_path: Path) -> None:
    reg = FakeRegistry()
    image = reg.image("1.0", "mine")
    other = reg.image("other", "theirs")
    # A referrer for another image, listed for ours (a writable listing cannot vouch).
    ref = reg.referrer(other, key_bundle(key, other["digest"]))
    reg._referrers_of = lambda d: [ref] if d == image["digest"] else []  # type: ignore[method-assign]
    assert fail_reasons(run(reg, key, tmp_path)) == ["unsigned"]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_bursts_are_retried_and_reach_the_right_decision(
    fake: FakeRegistry, key: KeyPair, tmp_path: Path, status: int
) -> None:
    budget = {"left": 3}

    def burst(request: httpx.Request) -> httpx.Response | None:
        if budget["left"] > 0:
            budget["left"] -= 1
            return httpx.Response(status, headers={"Retry-After": "0"})
        return None

    fake.fault = burst
    result = run(fake, key, tmp_path)
    assert result.exit_code == 0, result.report.findings
    assert budget["left"] == 0


def test_persistent_5xx_is_exit_3(fake: FakeRegistry, key: KeyPair, tmp_path: Path) -> None:
    fake.fault = lambda r: httpx.Response(503)
    result = run(fake, key, tmp_path, deadline_s=5.0)
    assert result.exit_code == 3 and result.manifests is None


def test_timeout_is_exit_3(fake: FakeRegistry, key: KeyPair, tmp_path: Path) -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("injected", request=request)

    fake.fault = hang
    result = run(fake, key, tmp_path, deadline_s=3.0)
    assert result.exit_code == 3 and result.manifests is None
    assert fail_reasons(result) == ["registry-unreachable"]


def _bundle_blob(fake: FakeRegistry) -> str:
    return next(d for d, data in fake.blobs.items() if data.startswith(b'{"mediaType"'))


@pytest.mark.parametrize("fault", ["wrong-bytes", "truncated", "oversized"])
def test_bad_bodies_are_never_an_allow(
    fake: FakeRegistry, key: KeyPair, tmp_path: Path, fault: str
) -> None:
    target = _bundle_blob(fake)

    def corrupt(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith(target):
            return None
        data = fake.blobs[target]
        if fault == "wrong-bytes":
            return httpx.Response(200, content=data.replace(b"payload", b"paYload"))
        if fault == "truncated":
            return httpx.Response(200, content=data[: len(data) // 2])
        return httpx.Response(200, content=data + b" " * (2 * 1024 * 1024))

    fake.fault = corrupt
    result = run(fake, key, tmp_path, deadline_s=5.0)
    assert result.exit_code in (1, 3), result.report.findings
    assert result.manifests is None
