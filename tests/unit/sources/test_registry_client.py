"""RegistryClient against an in-process fake registry (httpx.MockTransport), no network."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gate.errors import DigestMismatchError, EvidenceError, FetchError, SizeLimitError
from gate.policy.model import RegistryConfig
from gate.reference import parse_reference
from gate.sources.registry import RetryPolicy
from gate.sources.registry_types import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    InvalidContentError,
    NotFoundError,
    RegistryAuthError,
    signature_tag,
)
from tests.unit.sources.fakes import (
    FakeRegistry,
    FakeTime,
    canonical,
    digest,
    image_manifest,
    index_of,
    raises,
    run,
    status,
)

HOST = "registry.example.com"
REPO = f"{HOST}/acme/app"


def registry_with_image(**kwargs: object) -> tuple[FakeRegistry, bytes, str]:
    reg = FakeRegistry(**kwargs)  # type: ignore[arg-type]
    raw = image_manifest("1")
    d = reg.put_manifest("acme/app", raw, tag="v1")
    return reg, raw, d


# --- resolution -------------------------------------------------------------------------------


def test_resolve_tag_hashes_the_bytes_and_caches_per_reference() -> None:
    reg, raw, d = registry_with_image()

    async def go() -> None:
        async with reg.client() as client:
            ref = parse_reference(f"{REPO}:v1")
            first = await client.resolve(ref)
            n = len(reg.requests)
            again = await asyncio.gather(*(client.resolve(ref) for _ in range(5)))
            assert len(reg.requests) == n  # once per reference per run
            assert first.digest == d and first.size == len(raw)
            assert first.media_type == OCI_MANIFEST
            assert all(a == first for a in again)
            assert not first.tag_moved
            # The manifest is content-addressed: no second round trip.
            manifest = await client.get_manifest(REPO, d)
            assert manifest.raw == raw and len(reg.requests) == n

    run(go())


def test_resolve_ignores_a_lying_docker_content_digest() -> None:
    reg, raw, d = registry_with_image()
    lie = "sha256:" + "0" * 64

    def lying(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=raw, headers={"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": lie}
        )

    reg.faults.append(lying)

    async def go() -> None:
        async with reg.client() as client:
            assert (await client.resolve(parse_reference(f"{REPO}:v1"))).digest == d

    run(go())


def test_tag_at_digest_is_resolved_at_the_digest_and_a_moved_tag_is_reported() -> None:
    reg, _raw, old = registry_with_image()
    new = reg.put_manifest("acme/app", image_manifest("2"), tag="v1")  # v1 moved

    async def go() -> None:
        async with reg.client() as client:
            moved = await client.resolve(parse_reference(f"{REPO}:v1@{old}"))
            assert moved.digest == old and moved.tag == "v1"
            assert moved.tag_digest == new and moved.tag_moved
            gone = await client.resolve(parse_reference(f"{REPO}:v9@{old}"))
            assert gone.digest == old and gone.tag_digest is None and gone.tag_moved
            same = await client.resolve(parse_reference(f"{REPO}:v1@{new}"))
            assert not same.tag_moved

    run(go())


def test_multi_arch_tag_resolves_to_the_index() -> None:
    reg = FakeRegistry()
    amd, arm = image_manifest("amd"), image_manifest("arm")
    reg.put_manifest("acme/app", amd)
    reg.put_manifest("acme/app", arm)
    index = index_of((amd, OCI_MANIFEST), (arm, OCI_MANIFEST))
    d = reg.put_manifest("acme/app", index, OCI_INDEX, tag="multi")

    async def go() -> None:
        async with reg.client() as client:
            desc = await client.resolve(parse_reference(f"{REPO}:multi"))
            assert desc.digest == d and desc.is_index
            children = (await client.get_manifest(REPO, d)).manifests()
            assert [c.digest for c in children] == [digest(amd), digest(arm)]

    run(go())


def test_docker_media_types_are_read() -> None:
    reg = FakeRegistry()
    raw = image_manifest("d", DOCKER_MANIFEST)
    reg.put_manifest("acme/app", raw, DOCKER_MANIFEST)
    lst = canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST_LIST,
            "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": digest(raw), "size": len(raw)}],
        }
    )
    reg.put_manifest("acme/app", lst, DOCKER_MANIFEST_LIST, tag="list")

    async def go() -> None:
        async with reg.client() as client:
            desc = await client.resolve(parse_reference(f"{REPO}:list"))
            assert desc.media_type == DOCKER_MANIFEST_LIST and desc.is_index

    run(go())


def test_accept_lists_all_four_manifest_types() -> None:
    reg, _raw, _d = registry_with_image()

    async def go() -> None:
        async with reg.client() as client:
            await client.get_manifest(REPO, "v1")
        accept = reg.requests[0].headers["Accept"]
        for mt in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST):
            assert mt in accept

    run(go())


def test_missing_manifest() -> None:
    reg, _raw, _d = registry_with_image()

    async def go() -> None:
        async with reg.client() as client:
            assert (
                await client.get_manifest_if_exists(REPO, signature_tag("sha256:" + "a" * 64))
                is None
            )
            with pytest.raises(NotFoundError) as err:
                await client.get_manifest(REPO, "nope")
            assert err.value.exit_code == 3

    run(go())


def test_arguments_that_are_not_tags_or_digests_are_misuse() -> None:
    reg = FakeRegistry()

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(ValueError):
                await client.get_manifest(REPO, "../../etc")
            with pytest.raises(ValueError):
                await client.get_blob(REPO, "sha256:short")
            with pytest.raises(ValueError):
                await client.get_manifest("no-host-here", "v1")

    run(go())


# --- retries, deadline, faults -----------------------------------------------------------------


def test_5xx_and_429_bursts_are_retried_then_succeed() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([status(503), status(500), status(429), status(502)])
    time = FakeTime()

    async def go() -> None:
        async with reg.client(time) as client:
            assert (await client.resolve(parse_reference(f"{REPO}:v1"))).digest == d
        assert len(reg.requests) == 5
        assert len(time.sleeps) == 4
        assert all(0 <= s <= RetryPolicy().backoff_max_s for s in time.sleeps)

    run(go())


def test_connection_errors_and_timeouts_are_retried() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([raises(httpx.ConnectError), raises(httpx.ReadTimeout)])

    async def go() -> None:
        async with reg.client() as client:
            assert (await client.get_manifest(REPO, d)).digest == d

    run(go())


def test_retry_after_is_honoured_and_capped() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([status(429, {"Retry-After": "3"}), status(503, {"Retry-After": "3600"})])
    time = FakeTime()

    async def go() -> None:
        async with reg.client(time, retry=RetryPolicy(retry_after_cap_s=7)) as client:
            assert (await client.get_manifest(REPO, d)).digest == d
        assert time.sleeps == [3.0, 7.0]

    run(go())


def test_retries_stop_at_the_deadline() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([status(429, {"Retry-After": "4"})] * 10)
    time = FakeTime()

    async def go() -> None:
        deadline = time.deadline(10)
        async with reg.client(time, deadline=deadline, retry=RetryPolicy(max_attempts=10)) as c:
            with pytest.raises(FetchError) as err:
                await c.get_manifest(REPO, d)
        assert err.value.reason == "registry-unreachable" and err.value.exit_code == 3
        assert "deadline" in err.value.message
        assert sum(time.sleeps) <= 10
        assert len(reg.requests) == 3  # 0s, 4s, 8s; a retry at 12s would pass the deadline

    run(go())


def test_an_exhausted_deadline_fails_at_once() -> None:
    reg, _raw, d = registry_with_image()
    time = FakeTime()

    async def go() -> None:
        async with reg.client(time, deadline=time.deadline(1)) as client:
            time.now += 5
            with pytest.raises(FetchError, match="deadline"):
                await client.get_manifest(REPO, d)
        assert reg.requests == []

    run(go())


def test_persistent_5xx_gives_up_after_max_attempts() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([status(500)] * 10)

    async def go() -> None:
        async with reg.client(retry=RetryPolicy(max_attempts=3)) as client:
            with pytest.raises(FetchError, match="HTTP 500"):
                await client.get_manifest(REPO, d)
        assert len(reg.requests) == 3

    run(go())


def test_a_timeout_that_persists_is_a_fetch_error() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.extend([raises(httpx.ReadTimeout)] * 10)

    async def go() -> None:
        async with reg.client(retry=RetryPolicy(max_attempts=4)) as client:
            with pytest.raises(FetchError, match="timed out"):
                await client.get_blob(REPO, d)

    run(go())


def test_a_real_time_out_is_bounded_by_the_deadline() -> None:
    """A registry that never answers: the run's deadline ends the wait (real clock, 0.2 s)."""
    hang = asyncio.Event()

    async def never(request: httpx.Request) -> httpx.Response:
        await hang.wait()
        raise AssertionError("unreachable")

    reg = FakeRegistry()
    reg.faults.append(never)

    async def go() -> None:
        from gate.sources.registry import Deadline

        async with reg.client(deadline=Deadline(0.2)) as client:
            with pytest.raises(FetchError, match="deadline"):
                await client.get_blob(REPO, "sha256:" + "b" * 64)

    run(go())


def test_4xx_other_than_auth_and_404_is_not_retried() -> None:
    reg, _raw, d = registry_with_image()
    reg.faults.append(status(400))

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(EvidenceError) as err:
                await client.get_manifest(REPO, d)
        assert err.value.reason == "registry-error" and len(reg.requests) == 1

    run(go())


def test_a_truncated_body_is_never_a_success() -> None:
    reg, raw, _d = registry_with_image()

    def truncated(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            content=raw[:20],
            headers={"Content-Type": OCI_MANIFEST, "Content-Length": str(len(raw))},
        )

    reg.faults.extend([truncated] * 10)

    async def go() -> None:
        async with reg.client(retry=RetryPolicy(max_attempts=3)) as client:
            with pytest.raises(FetchError, match="truncated"):
                await client.get_manifest(REPO, "v1")

    run(go())


def test_a_truncated_body_then_a_good_one() -> None:
    reg, _raw, d = registry_with_image()

    def truncated(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    reg.faults.append(truncated)

    async def go() -> None:
        async with reg.client() as client:
            assert (await client.get_manifest(REPO, "v1")).digest == d

    run(go())


def test_an_announced_body_over_the_cap_is_refused_unread() -> None:
    reg = FakeRegistry()
    blob = b"x" * 2048
    d = reg.put_blob("acme/app", blob)

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(SizeLimitError) as err:
                await client.get_blob(REPO, d, max_bytes=1024)
            assert err.value.exit_code == 3
            assert await client.get_blob(REPO, d, max_bytes=4096) == blob

    run(go())


def test_a_streamed_body_over_the_cap_stops_reading() -> None:
    produced: list[int] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for i in range(10_000):
                produced.append(i)
                yield b"y" * 1024

    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Endless(), headers={"Content-Type": OCI_MANIFEST})

    reg = FakeRegistry()
    reg.faults.append(endless)

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(SizeLimitError):
                await client.get_manifest(REPO, "v1", max_bytes=64 * 1024)
        assert len(produced) < 100  # it stopped near the cap, not at 10 MB

    run(go())


def test_default_manifest_cap_is_4_mib() -> None:
    reg = FakeRegistry()
    big = canonical(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "pad": "z" * (4 << 20)}
    )
    reg.put_manifest("acme/app", big, OCI_INDEX, tag="big")

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(SizeLimitError):
                await client.get_manifest(REPO, "big")

    run(go())


def test_digest_mismatch_is_a_deny() -> None:
    reg, _raw, d = registry_with_image()
    other = image_manifest("evil")
    reg.manifests[("acme/app", d)] = (other, OCI_MANIFEST)  # served under the wrong digest
    blob_digest = digest(b"genuine")
    reg.blobs[("acme/app", blob_digest)] = b"tampered"

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(DigestMismatchError) as err:
                await client.get_manifest(REPO, d)
            assert err.value.exit_code == 1 and err.value.reason == "digest-mismatch"
            with pytest.raises(DigestMismatchError):
                await client.get_blob(REPO, blob_digest)
            with pytest.raises(DigestMismatchError):
                await client.resolve(parse_reference(f"{REPO}:v1@{d}"))

    run(go())


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # Header says index, body is an image manifest (the OCI ambiguity).
        (OCI_INDEX, image_manifest("x")),
        # Header and body mediaType disagree.
        (DOCKER_MANIFEST, image_manifest("x")),
        # Docker schema 1.
        (
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            canonical({"schemaVersion": 1, "name": "acme/app", "fsLayers": []}),
        ),
        # A login page from a proxy.
        ("text/html", b"<html>please log in</html>"),
        # Both layers and manifests.
        (
            OCI_MANIFEST,
            canonical({"schemaVersion": 2, "config": {}, "layers": [], "manifests": []}),
        ),
        # Duplicate keys: parsers disagree on which wins.
        (OCI_MANIFEST, b'{"schemaVersion":2,"schemaVersion":2,"config":{},"layers":[]}'),
        # Not schema 2.
        (OCI_MANIFEST, canonical({"schemaVersion": 3, "config": {}, "layers": []})),
    ],
)
def test_a_manifest_with_a_wrong_media_type_or_shape_is_refused(
    content_type: str, body: bytes
) -> None:
    reg = FakeRegistry()
    reg.put_manifest("acme/app", body, content_type, tag="bad")

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(InvalidContentError) as err:
                await client.resolve(parse_reference(f"{REPO}:bad"))
            assert err.value.exit_code == 1

    run(go())


def test_malformed_descriptors_are_refused() -> None:
    reg = FakeRegistry()
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "x", "digest": "sha256:nothex", "size": 1},
            "layers": [{"mediaType": "x", "digest": "sha256:" + "a" * 64, "size": -1}],
        }
    )
    d = reg.put_manifest("acme/app", body)

    async def go() -> None:
        async with reg.client() as client:
            manifest = await client.get_manifest(REPO, d)
            with pytest.raises(InvalidContentError):
                manifest.layers()
            with pytest.raises(InvalidContentError):
                manifest.config()

    run(go())


def test_concurrency_is_bounded_by_the_semaphore() -> None:
    reg = FakeRegistry()
    digests = [reg.put_blob("acme/app", f"blob {i}".encode()) for i in range(12)]
    in_flight = 0
    peak = 0
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight >= 3:
            release.set()
        await release.wait()
        in_flight -= 1
        return reg._serve(request)

    reg.faults.extend([slow] * 12)

    async def go() -> None:
        async with reg.client(concurrency=3) as client:
            got = await asyncio.gather(*(client.get_blob(REPO, d) for d in digests))
        assert [digest(b) for b in got] == digests
        assert peak == 3

    run(go())


# --- transport security -----------------------------------------------------------------------


def test_https_by_default_and_plain_http_only_where_the_policy_says() -> None:
    reg, _raw, d = registry_with_image()

    async def go() -> None:
        async with reg.client() as client:
            await client.get_manifest(REPO, d)
        assert reg.requests[-1].url.scheme == "https"
        async with reg.client(configs=[RegistryConfig(host=HOST, insecure=True)]) as client:
            await client.get_manifest(REPO, d)
        assert reg.requests[-1].url.scheme == "http"

    run(go())


def test_docker_hub_is_reached_at_registry_1() -> None:
    reg = FakeRegistry(host="registry-1.docker.io")
    raw = image_manifest("hub")
    reg.put_manifest("library/busybox", raw, tag="latest")

    async def go() -> None:
        async with reg.client() as client:
            ref = parse_reference("busybox")
            assert (await client.resolve(ref)).digest == digest(raw)
        assert reg.requests[0].url.host == "registry-1.docker.io"
        assert reg.requests[0].url.path == "/v2/library/busybox/manifests/latest"

    run(go())


def test_credentials_are_not_sent_to_another_host_after_a_redirect(tmp_path: Path) -> None:
    reg = FakeRegistry(auth="basic")
    blob = b"signature payload"
    d = digest(blob)
    seen_at_storage: list[httpx.Request] = []

    def storage(request: httpx.Request) -> httpx.Response:
        seen_at_storage.append(request)
        return httpx.Response(200, content=blob)

    reg.extra["storage.example.net"] = storage

    def redirect(request: httpx.Request) -> httpx.Response:
        if "Authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        return httpx.Response(
            307, headers={"Location": f"https://storage.example.net/blobs/{d}?sig=abc"}
        )

    reg.faults.extend([redirect, redirect])
    config = docker_config(tmp_path, {HOST: {"auth": b64("alice:s3cret")}})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            assert await client.get_blob(REPO, d) == blob
        assert reg.requests[-1].headers["Authorization"].startswith("Basic ")
        assert len(seen_at_storage) == 1
        assert "Authorization" not in seen_at_storage[0].headers

    run(go())


def test_same_host_redirects_keep_credentials_and_https_to_http_is_refused(
    tmp_path: Path,
) -> None:
    reg = FakeRegistry(auth="basic")
    blob = b"payload"
    d = reg.put_blob("acme/app", blob)
    config = docker_config(tmp_path, {HOST: {"username": "alice", "password": "s3cret"}})

    def relative(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": f"/v2/acme/app/blobs/{d}"})

    def downgrade(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": f"http://{HOST}/v2/acme/app/blobs/{d}"})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            reg.faults.append(relative)
            assert await client.get_blob(REPO, d) == blob
        async with reg.client(docker_config=config) as client:
            reg.faults.append(downgrade)
            with pytest.raises(FetchError, match="plain http"):
                await client.get_blob(REPO, d)

    run(go())


# --- auth ------------------------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def docker_config(tmp_path: Path, auths: dict[str, dict[str, str]]) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": auths}))
    return path


def test_basic_challenge_is_answered_then_sent_preemptively(tmp_path: Path) -> None:
    reg, _raw, d = registry_with_image(auth="basic")
    config = docker_config(tmp_path, {f"https://{HOST}/v2/": {"auth": b64("alice:s3cret")}})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            await client.get_manifest(REPO, "v1")
            n = len(reg.requests)
            await client.get_manifest(REPO, d)
            await client.get_manifest_if_exists(REPO, "other")
        assert n == 2  # 401, then with credentials
        assert len(reg.requests) == n + 1  # digest came from cache; "other" sent with Basic
        assert reg.requests[-1].headers["Authorization"].startswith("Basic ")

    run(go())


def test_basic_challenge_without_credentials_is_an_auth_error() -> None:
    reg, _raw, _d = registry_with_image(auth="basic")

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(RegistryAuthError) as err:
                await client.get_manifest(REPO, "v1")
        assert err.value.exit_code == 3 and err.value.reason == "registry-auth"

    run(go())


def test_wrong_basic_credentials_are_an_auth_error(tmp_path: Path) -> None:
    reg, _raw, _d = registry_with_image(auth="basic")
    config = docker_config(tmp_path, {HOST: {"auth": b64("alice:wrong")}})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            with pytest.raises(RegistryAuthError, match="refused"):
                await client.get_manifest(REPO, "v1")

    run(go())


def test_bearer_token_fetched_once_per_scope_and_reused(tmp_path: Path) -> None:
    reg, _raw, _d = registry_with_image(auth="bearer")
    reg.put_manifest("acme/other", image_manifest("o"), tag="v1")
    config = docker_config(tmp_path, {HOST: {"auth": b64("alice:s3cret")}})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            await asyncio.gather(
                *(client.get_manifest(REPO, "v1") for _ in range(10)),
                *(client.get_manifest(f"{HOST}/acme/other", "v1") for _ in range(10)),
            )
            await client.get_manifest_if_exists(REPO, "missing")
            scopes = [r.url.params["scope"] for r in reg.token_requests]
            assert sorted(scopes) == ["repository:acme/app:pull", "repository:acme/other:pull"]
            assert client.stats.token_fetches == 2
        for r in reg.token_requests:
            assert r.url.params["service"] == HOST
            assert r.url.scheme == "https"
            assert r.headers["Authorization"].startswith("Basic ")  # configured credentials

    run(go())


def test_bearer_anonymous_and_token_or_access_token() -> None:
    reg, _raw, _d = registry_with_image(auth="bearer")
    reg.put_manifest("acme/b", image_manifest("b"), tag="v1")

    async def go() -> None:
        async with reg.client() as client:
            await client.get_manifest(REPO, "v1")  # answered with access_token
            await client.get_manifest(f"{HOST}/acme/b", "v1")  # answered with token
        assert len(reg.token_requests) == 2
        assert all("Authorization" not in r.headers for r in reg.token_requests)

    run(go())


def test_a_plain_http_token_realm_is_refused_for_a_secure_registry() -> None:
    reg, _raw, _d = registry_with_image(auth="bearer", realm="http://auth.example.com/token")

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(RegistryAuthError, match="plain http"):
                await client.get_manifest(REPO, "v1")
        assert reg.token_requests == []

    run(go())


def test_an_expired_token_is_fetched_again() -> None:
    reg, _raw, _d = registry_with_image(auth="bearer")
    time = FakeTime()

    async def go() -> None:
        async with reg.client(time, deadline=time.deadline(10_000)) as client:
            await client.get_manifest(REPO, "v1")
            time.now += 301  # the fake token server says expires_in 300
            await client.get_manifest_if_exists(REPO, "v2")
        assert len(reg.token_requests) == 2

    run(go())


def test_token_endpoint_refusing_credentials_is_an_auth_error(tmp_path: Path) -> None:
    reg, _raw, _d = registry_with_image(auth="bearer")
    config = docker_config(tmp_path, {HOST: {"auth": b64("alice:wrong")}})

    async def go() -> None:
        async with reg.client(docker_config=config) as client:
            with pytest.raises(RegistryAuthError, match="token endpoint"):
                await client.get_manifest(REPO, "v1")

    run(go())


def test_policy_credentials_file_is_used(tmp_path: Path) -> None:
    reg, _raw, _d = registry_with_image(auth="basic")
    policy_file = docker_config(tmp_path, {HOST: {"auth": b64("alice:s3cret")}})
    configs = [RegistryConfig(host=HOST, credentials=str(policy_file))]

    async def go() -> None:
        async with reg.client(configs=configs) as client:
            await client.get_manifest(REPO, "v1")

    run(go())


def test_a_missing_policy_credentials_file_is_an_auth_error(tmp_path: Path) -> None:
    reg, _raw, _d = registry_with_image(auth="basic")
    configs = [RegistryConfig(host=HOST, credentials=str(tmp_path / "absent.json"))]

    async def go() -> None:
        async with reg.client(configs=configs) as client:
            with pytest.raises(RegistryAuthError, match="does not exist"):
                await client.get_manifest(REPO, "v1")

    run(go())


# --- referrers -------------------------------------------------------------------------------

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def referrer_entry(seed: str, artifact_type: str = BUNDLE) -> dict[str, object]:
    raw = image_manifest(seed)
    return {
        "mediaType": OCI_MANIFEST,
        "digest": digest(raw),
        "size": len(raw),
        "artifactType": artifact_type,
    }


def test_referrers_api_answers_with_pagination_and_filter() -> None:
    reg, _raw, d = registry_with_image(referrers_api=True)
    a, b, c = referrer_entry("a"), referrer_entry("b", "application/x-other"), referrer_entry("c")
    reg.referrer_pages[d] = [[a, b], [c, a]]

    async def go() -> None:
        async with reg.client() as client:
            everything = await client.referrers(REPO, d)
            bundles = await client.referrers(REPO, d, artifact_type=BUNDLE)
        assert [x.digest for x in everything] == [a["digest"], b["digest"], c["digest"]]
        assert [x.digest for x in bundles] == [a["digest"], c["digest"]]
        assert all(x.artifact_type == BUNDLE for x in bundles)
        assert reg.requests[0].headers["Accept"] == OCI_INDEX
        assert not any("sha256-" in r.url.path for r in reg.requests)  # no fallback

    run(go())


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (404, b"404 page not found\n"),  # distribution 2.8.2
        (404, canonical({"errors": [{"code": "NAME_UNKNOWN", "message": "x"}]})),
        (405, b""),
        (400, canonical({"errors": [{"code": "UNSUPPORTED"}]})),
    ],
)
def test_referrers_fall_back_to_the_tag_schema(code: int, body: bytes) -> None:
    reg, _raw, d = registry_with_image(referrers_status=code, referrers_404_body=body)
    a, b = referrer_entry("a"), referrer_entry("b", "application/x-other")
    fallback = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [a, b]})
    reg.put_manifest("acme/app", fallback, OCI_INDEX, tag=d.replace(":", "-"))
    other = reg.put_manifest("acme/app", image_manifest("no referrers"))

    async def go() -> None:
        async with reg.client() as client:
            found = await client.referrers(REPO, d, artifact_type=BUNDLE)
            assert [x.digest for x in found] == [a["digest"]]
            api_calls = sum("/referrers/" in r.url.path for r in reg.requests)
            assert await client.referrers(REPO, other) == []
            # The host has no referrers API: it is not asked again in this run.
            assert sum("/referrers/" in r.url.path for r in reg.requests) == api_calls == 1

    run(go())


def test_referrers_fallback_tag_that_is_not_an_index_is_refused() -> None:
    reg, _raw, d = registry_with_image()
    reg.put_manifest("acme/app", image_manifest("z"), OCI_MANIFEST, tag=d.replace(":", "-"))

    async def go() -> None:
        async with reg.client() as client:
            with pytest.raises(InvalidContentError):
                await client.referrers(REPO, d)

    run(go())


def test_referrers_api_errors_are_not_taken_for_no_api() -> None:
    reg, _raw, d = registry_with_image(referrers_api=True)
    reg.faults.extend([status(500)] * 10)

    async def go() -> None:
        async with reg.client(retry=RetryPolicy(max_attempts=2)) as client:
            with pytest.raises(FetchError):
                await client.referrers(REPO, d)

    run(go())


def test_client_refuses_use_after_close() -> None:
    reg, _raw, d = registry_with_image()

    async def go() -> None:
        client = reg.client()
        async with client:
            pass
        with pytest.raises(RuntimeError):
            await client.get_manifest(REPO, d)

    run(go())


def test_concurrent_referrers_probe_the_api_once_per_host() -> None:
    reg = FakeRegistry()
    digests = [reg.put_manifest("acme/app", image_manifest(f"s{i}")) for i in range(20)]

    async def go() -> None:
        async with reg.client() as client:
            found = await asyncio.gather(*(client.referrers(REPO, d) for d in digests))
        assert found == [[]] * 20
        assert sum("/referrers/" in r.url.path for r in reg.requests) == 1
        assert sum("/manifests/sha256-" in r.url.path for r in reg.requests) == 20

    run(go())


def test_referrers_api_found_by_the_probe_is_used_by_the_waiters() -> None:
    reg = FakeRegistry(referrers_api=True)
    digests = [reg.put_manifest("acme/app", image_manifest(f"s{i}")) for i in range(5)]
    for d in digests:
        reg.referrer_pages[d] = [[referrer_entry(d)]]

    async def go() -> None:
        async with reg.client() as client:
            found = await asyncio.gather(*(client.referrers(REPO, d) for d in digests))
        assert [len(f) for f in found] == [1] * 5
        assert not any("sha256-" in r.url.path for r in reg.requests)

    run(go())


def test_a_tag_that_now_names_garbage_does_not_fail_a_pinned_reference() -> None:
    reg, _raw, d = registry_with_image()
    garbage = b"<html>not a manifest</html>"
    reg.manifests[("acme/app", "v1")] = (garbage, "text/html")

    async def go() -> None:
        async with reg.client() as client:
            got = await client.resolve(parse_reference(f"{REPO}:v1@{d}"))
        assert got.digest == d and got.tag_moved and got.tag_digest == digest(garbage)

    run(go())
