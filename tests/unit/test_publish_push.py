"""The push client under faults (httpx.MockTransport): retries, digest checks, auth, order."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate.cli import main
from gate.errors import DigestMismatchError, FetchError, GateError
from gate.flux import flux_artifact, holds_signature, signature_layer, signature_tag
from gate.policy.model import RegistryConfig
from gate.signing import Signer, generate_key_pair
from gate.sources.publish import (
    Deadline,
    PushClient,
    RetryPolicy,
    publish_signed,
    push_scope,
)
from tests.unit.helpers import write_policy, write_source

HOST = "registry.test"
REPO = f"{HOST}/deploy/shop"
FAST = RetryPolicy(max_attempts=4, backoff_multiplier_s=0.001, backoff_max_s=0.002)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


Fault = Callable[[httpx.Request], httpx.Response | None]


@dataclass
class FakeRegistry:
    """Enough of the distribution API for pushes; ``fault`` may answer first."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)  # tag or digest -> bytes
    log: list[tuple[str, str]] = field(default_factory=list)
    fault: Fault | None = None
    lie_digest: bool = False  # answer writes with another digest
    no_digest_header: bool = False
    uploads: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append((request.method, request.url.path))
        if self.fault is not None:
            answer = self.fault(request)
            if answer is not None:
                return answer
        path = request.url.path
        m = re.fullmatch(r"/v2/(.+)/blobs/uploads/(\w*)", path)
        if m and request.method == "POST":
            self.uploads += 1
            return httpx.Response(
                202, headers={"Location": f"/v2/{m[1]}/blobs/uploads/u{self.uploads}"}
            )
        if m and request.method == "PUT":
            data = request.read()
            digest = request.url.params["digest"]
            if _digest(data) != digest:
                return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
            self.blobs[digest] = data
            return self._written(201, digest)
        m = re.fullmatch(r"/v2/(.+)/blobs/(sha256:[0-9a-f]{64})", path)
        if m:
            data_or_none = self.blobs.get(m[2])
            if data_or_none is None:
                return httpx.Response(404)
            return httpx.Response(
                200,
                headers={"Content-Length": str(len(data_or_none)), "Docker-Content-Digest": m[2]},
            )
        m = re.fullmatch(r"/v2/(.+)/manifests/(.+)", path)
        if m and request.method == "PUT":
            data = request.read()
            self.manifests[m[2]] = data
            self.manifests[_digest(data)] = data
            return self._written(201, _digest(data))
        if m and request.method in ("GET", "HEAD"):
            data_or_none = self.manifests.get(m[2])
            if data_or_none is None:
                return httpx.Response(404)
            headers = {
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                "Docker-Content-Digest": _digest(data_or_none),
            }
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(data_or_none))
                return httpx.Response(200, headers=headers)
            return httpx.Response(200, headers=headers, content=data_or_none)
        return httpx.Response(404)

    def _written(self, status: int, digest: str) -> httpx.Response:
        if self.no_digest_header:
            return httpx.Response(status)
        said = _digest(b"something else") if self.lie_digest else digest
        return httpx.Response(status, headers={"Docker-Content-Digest": said})


async def _no_sleep(_seconds: float) -> None:
    return None


def _client(fake: FakeRegistry, **kw: Any) -> PushClient:
    return PushClient(
        [RegistryConfig(host=HOST)],
        transport=httpx.MockTransport(fake),
        deadline=Deadline(60, sleep=_no_sleep),
        retry=FAST,
        **kw,
    )


ARTIFACT = flux_artifact("kind: ConfigMap\n", source="https://git.example.com/a.git")
SIGNER = Signer(generate_key_pair().private_key)


def _publish(fake: FakeRegistry, tag: str = "prod", **kw: Any) -> Any:
    async def go() -> Any:
        async with _client(fake, **kw) as client:
            return await publish_signed(client, REPO, tag, ARTIFACT, SIGNER)

    return asyncio.run(go())


def test_publish_order_tag_last_and_signature_stored() -> None:
    fake = FakeRegistry()
    published = _publish(fake)
    assert published.digest == ARTIFACT.digest
    assert fake.manifests["prod"] == ARTIFACT.manifest
    puts = [p for method, p in fake.log if method == "PUT" and "/manifests/" in p]
    # by digest, then the signature, then the tag: the tag never names an unsigned artifact
    assert puts == [
        f"/v2/deploy/shop/manifests/{ARTIFACT.digest}",
        f"/v2/deploy/shop/manifests/{signature_tag(ARTIFACT.digest)}",
        "/v2/deploy/shop/manifests/prod",
    ]
    sig = json.loads(fake.manifests[signature_tag(ARTIFACT.digest)])
    payload = signature_layer(SIGNER, REPO, ARTIFACT.digest)
    assert holds_signature(sig["layers"], payload, SIGNER.public_key)
    for layer in [sig["config"], *sig["layers"]]:
        assert layer["digest"] in fake.blobs


def test_second_publish_sends_no_blobs_and_keeps_the_signature() -> None:
    fake = FakeRegistry()
    _publish(fake)
    sig_before = fake.manifests[signature_tag(ARTIFACT.digest)]
    fake.log.clear()
    again = _publish(fake)
    assert not again.signed_now
    assert not any(method == "POST" for method, _ in fake.log)  # every blob was there
    assert fake.manifests[signature_tag(ARTIFACT.digest)] == sig_before


def test_5xx_and_429_are_retried() -> None:
    fake = FakeRegistry()
    seen: dict[str, int] = {}

    def flaky(request: httpx.Request) -> httpx.Response | None:
        key = f"{request.method} {request.url.path}"
        seen[key] = seen.get(key, 0) + 1
        if request.method == "POST" and seen[key] == 1:
            return httpx.Response(503)
        if request.method == "PUT" and "/manifests/" in request.url.path and seen[key] == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return None

    fake.fault = flaky
    assert _publish(fake).digest == ARTIFACT.digest
    assert fake.manifests["prod"] == ARTIFACT.manifest


def test_connection_errors_are_retried() -> None:
    fake = FakeRegistry()
    failed: set[str] = set()

    def drop(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and request.url.path not in failed:
            failed.add(request.url.path)
            raise httpx.ConnectError("connection reset", request=request)
        return None

    fake.fault = drop
    assert _publish(fake).digest == ARTIFACT.digest


def test_persistent_5xx_is_could_not_decide_and_no_tag() -> None:
    fake = FakeRegistry()
    fake.fault = lambda r: httpx.Response(500) if r.method == "PUT" else None
    with pytest.raises(FetchError) as e:
        _publish(fake)
    assert e.value.exit_code == 3
    assert "prod" not in fake.manifests
    assert sum(1 for m, p in fake.log if m == "PUT") == FAST.max_attempts  # then it gave up


def test_4xx_is_not_retried() -> None:
    fake = FakeRegistry()
    fake.fault = lambda r: httpx.Response(400) if r.method == "POST" else None
    with pytest.raises(GateError):
        _publish(fake)
    assert sum(1 for m, _ in fake.log if m == "POST") == 1


def test_blob_digest_mismatch_is_an_error_never_success() -> None:
    fake = FakeRegistry(lie_digest=True)
    with pytest.raises(DigestMismatchError) as e:
        _publish(fake)
    assert "not the bytes sent" in e.value.diagnostics()
    assert "prod" not in fake.manifests
    assert not any("/manifests/" in p for m, p in fake.log if m == "PUT")


def test_manifest_digest_mismatch_is_an_error() -> None:
    fake = FakeRegistry()
    real = fake._written

    def lie_on_manifests(status: int, digest: str) -> httpx.Response:
        if digest == ARTIFACT.digest:
            return httpx.Response(status, headers={"Docker-Content-Digest": _digest(b"x")})
        return real(status, digest)

    fake._written = lie_on_manifests  # type: ignore[method-assign]
    with pytest.raises(DigestMismatchError):
        _publish(fake)
    assert "prod" not in fake.manifests


def test_without_digest_header_the_write_is_read_back() -> None:
    fake = FakeRegistry(no_digest_header=True)
    assert _publish(fake).digest == ARTIFACT.digest
    assert ("HEAD", f"/v2/deploy/shop/manifests/{ARTIFACT.digest}") in fake.log

    # ... and a registry that says 201 but has nothing is caught.
    lost = FakeRegistry(no_digest_header=True)

    def forget(request: httpx.Request) -> httpx.Response | None:
        if request.method == "HEAD" and "/manifests/" in request.url.path:
            return httpx.Response(404)
        return None

    lost.fault = forget
    with pytest.raises(DigestMismatchError):
        _publish(lost)


def test_lost_upload_session_is_restarted_once() -> None:
    fake = FakeRegistry()
    gone: set[str] = set()

    def expire(request: httpx.Request) -> httpx.Response | None:
        path = request.url.path
        if request.method == "PUT" and "/blobs/uploads/" in path and not gone:
            gone.add(path)
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UPLOAD_UNKNOWN"}]})
        return None

    fake.fault = expire
    assert _publish(fake).digest == ARTIFACT.digest


def test_blob_size_cap_before_any_request() -> None:
    fake = FakeRegistry()
    with pytest.raises(GateError, match="limit"):
        _publish(fake, max_blob_bytes=10)
    assert fake.log == []


def test_bearer_token_with_push_scope() -> None:
    fake = FakeRegistry()
    scopes: list[str] = []

    def auth(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "auth.test":
            scopes.append(request.url.params["scope"])
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("Authorization") != "Bearer t0k":
            challenge = 'Bearer realm="https://auth.test/token",service="registry.test"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return None

    fake.fault = auth
    assert _publish(fake).digest == ARTIFACT.digest
    assert scopes == [push_scope("deploy/shop")] == ["repository:deploy/shop:pull,push"]


def test_cross_origin_upload_location_gets_no_credentials() -> None:
    fake = FakeRegistry()
    sent: list[str | None] = []

    def elsewhere(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "storage.test":
            sent.append(request.headers.get("Authorization"))
            data = request.read()
            fake.blobs[request.url.params["digest"]] = data
            return httpx.Response(201, headers={"Docker-Content-Digest": _digest(data)})
        if request.headers.get("Authorization") != "Basic dTpw":
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "https://storage.test/upload/1"})
        return None

    fake.fault = elsewhere
    config = Path(__file__).parent / "_publish_auth.json"
    try:
        config.write_text(json.dumps({"auths": {HOST: {"auth": "dTpw"}}}))
        assert _publish(fake, docker_config=config).digest == ARTIFACT.digest
    finally:
        config.unlink()
    assert sent and all(a is None for a in sent)


def test_deadline_exhausted_is_could_not_decide() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    fake = FakeRegistry()

    def slow(request: httpx.Request) -> httpx.Response | None:
        now[0] += 40.0
        return httpx.Response(503)

    fake.fault = slow

    async def go() -> None:
        deadline = Deadline(60, clock=lambda: now[0], sleep=sleep)
        transport = httpx.MockTransport(fake)
        async with PushClient([RegistryConfig(host=HOST)], transport=transport,
                              deadline=deadline, retry=FAST) as client:  # fmt: skip
            await publish_signed(client, REPO, "prod", ARTIFACT, SIGNER)

    with pytest.raises(FetchError):
        asyncio.run(go())
    assert len(fake.log) <= 2


# --- the CLI when the push fails after an allow -------------------------------------------------


def test_cli_push_failure_after_allow_is_exit_3_and_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = generate_key_pair()
    (tmp_path / "publish.key").write_bytes(key.private_pem(b"pw"))
    monkeypatch.setenv("GATE_PUBLISH_KEY_PASSWORD", "pw")
    spec = {
        "images": [{"match": ["docker.io/**"], "exempt": "test"}],
        "output": {"publish": {"key": "publish.key"}},
    }
    policy = write_policy(tmp_path / "policy.yaml", spec)
    src = write_source(tmp_path / "src", {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "c"}})  # fmt: skip
    fake = FakeRegistry()
    fake.fault = lambda r: httpx.Response(502)

    import gate.cli.publish as cli_publish

    def client(configs: Any, *, deadline: Deadline) -> PushClient:
        return PushClient(
            configs,
            transport=httpx.MockTransport(fake),
            deadline=Deadline(60, sleep=_no_sleep),
            retry=FAST,
        )

    monkeypatch.setattr(cli_publish, "PushClient", client)
    report = tmp_path / "report.json"
    argv = ["publish", str(src), "--policy", str(policy), "--to", f"oci://{REPO}:prod"]
    assert main([*argv, "--report", str(report)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "published" not in err.replace("not published", "")
    findings = json.loads(report.read_text())["findings"]
    (publish,) = [f for f in findings if f["check"] == "publish"]
    assert publish["outcome"] == "fail"
    assert publish["reason"] == "registry-unreachable"
    assert fake.manifests == {}
