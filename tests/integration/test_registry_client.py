"""The verifying registry client against the real registry (distribution 2.8.2) and token server."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gate.errors import DigestMismatchError
from gate.policy.model import RegistryConfig
from gate.reference import parse_reference
from gate.sources.registry import RegistryClient, signature_tag
from gate.sources.registry_types import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    NotFoundError,
    RegistryAuthError,
)
from testkit import oci
from testkit.registry import Registry, running_registry

pytestmark = pytest.mark.integration

T = TypeVar("T")
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def client_for(reg: Registry, tmp_path: Path, *, with_credentials: bool = False) -> RegistryClient:
    auths: dict[str, Any] = {}
    if with_credentials:
        assert reg.username and reg.password
        token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
        auths[reg.host] = {"auth": token}
    config = tmp_path / "docker-config.json"
    config.write_text(json.dumps({"auths": auths}))
    return RegistryClient(
        [RegistryConfig(host=reg.host, insecure=True)], docker_config=config, deadline_s=60
    )


def test_resolve_tags_and_digests_of_images_and_indexes(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    image = oci.push_image(registry, repo_name, "v1", seed="one")
    docker_image = oci.push_image(registry, repo_name, "docker", seed="two", docker=True)
    index = oci.push_index(registry, repo_name, "multi", seed="three")
    docker_list = oci.push_index(registry, repo_name, "list", seed="four", docker=True)
    name = f"{registry.host}/{repo_name}"

    async def go() -> None:
        async with client_for(registry, tmp_path) as client:
            got = await client.resolve(parse_reference(f"{name}:v1"))
            assert (got.digest, got.media_type, got.size) == (
                image.digest, OCI_MANIFEST, image.size,
            )  # fmt: skip
            got = await client.resolve(parse_reference(f"{name}:docker"))
            assert (got.digest, got.media_type) == (docker_image.digest, DOCKER_MANIFEST)
            # Multi-arch: the tag resolves to the index, which is what cosign signs.
            got = await client.resolve(parse_reference(f"{name}:multi"))
            assert (got.digest, got.media_type) == (index.digest, OCI_INDEX)
            got = await client.resolve(parse_reference(f"{name}:list"))
            assert (got.digest, got.media_type) == (docker_list.digest, DOCKER_MANIFEST_LIST)
            # By digest, and a child of the index by digest.
            child = index.children[1]
            got = await client.resolve(parse_reference(f"{name}@{child.digest}"))
            assert got.digest == child.digest and not got.tag_moved
            manifest = await client.get_manifest(name, index.digest)
            assert [m.digest for m in manifest.manifests()] == [c.digest for c in index.children]
            assert manifest.raw == oci.get_manifest(registry, repo_name, index.digest).data

    run(go())


def test_tag_at_digest_reports_a_moved_tag(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    old = oci.push_image(registry, repo_name, "release", seed="old")
    new = oci.push_image(registry, repo_name, "release", seed="new")
    name = f"{registry.host}/{repo_name}"

    async def go() -> None:
        async with client_for(registry, tmp_path) as client:
            got = await client.resolve(parse_reference(f"{name}:release@{old.digest}"))
            assert got.digest == old.digest
            assert got.tag_moved and got.tag_digest == new.digest

    run(go())


def test_manifests_and_blobs_are_fetched_and_checked(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    image = oci.push_image(registry, repo_name, "v1", files={"etc/app": b"hello\n"})
    name = f"{registry.host}/{repo_name}"
    other = oci.push_blob(registry, repo_name, b"x" * 4096)

    async def go() -> None:
        async with client_for(registry, tmp_path) as client:
            manifest = await client.get_manifest(name, image.digest)
            config = manifest.config()
            assert config is not None
            config_bytes = await client.get_blob(name, config.digest)
            assert json.loads(config_bytes)["architecture"] == "amd64"
            for layer in manifest.layers():
                data = await client.get_blob(name, layer.digest, max_bytes=layer.size)
                assert len(data) == layer.size
            from gate.errors import SizeLimitError

            with pytest.raises(SizeLimitError):
                await client.get_blob(name, other.digest, max_bytes=1024)
            with pytest.raises(NotFoundError):
                await client.get_blob(name, "sha256:" + "0" * 64)
            with pytest.raises(NotFoundError):
                await client.get_manifest(name, "no-such-tag")

    run(go())


def test_legacy_signature_tags_are_found(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    unsigned = oci.push_image(registry, repo_name, "v2", seed="unsigned")
    payload = json.dumps({"critical": {"image": {"docker-manifest-digest": image.digest}}}).encode()
    layer = oci.Layer(
        payload,
        oci.COSIGN_SIMPLESIGNING,
        {"dev.cosignproject.cosign/signature": base64.b64encode(b"sig").decode()},
    )
    oci.push_signature_manifest(registry, repo_name, image.digest, [layer])
    name = f"{registry.host}/{repo_name}"

    async def go() -> None:
        async with client_for(registry, tmp_path) as client:
            sig = await client.get_manifest_if_exists(name, signature_tag(image.digest))
            assert sig is not None and sig.media_type == OCI_MANIFEST
            [found] = sig.layers()
            assert found.media_type == oci.COSIGN_SIMPLESIGNING
            assert "dev.cosignproject.cosign/signature" in found.annotations
            assert await client.get_blob(name, found.digest) == payload
            assert await client.get_manifest_if_exists(name, signature_tag(unsigned.digest)) is None

    run(go())


def test_referrers_fall_back_to_the_tag_schema_index(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    index = oci.push_index(registry, repo_name, "multi")
    bundle = json.dumps({"mediaType": BUNDLE}).encode()
    first = oci.push_referrer(registry, repo_name, index, BUNDLE, bundle, BUNDLE)
    other = oci.push_referrer(
        registry, repo_name, index, "application/x-sbom", b"sbom", "application/x-sbom"
    )
    name = f"{registry.host}/{repo_name}"

    async def go() -> None:
        async with client_for(registry, tmp_path) as client:
            everything = await client.referrers(name, index.digest)
            assert {d.digest for d in everything} == {first.digest, other.digest}
            [found] = await client.referrers(name, index.digest, artifact_type=BUNDLE)
            assert found.digest == first.digest and found.artifact_type == BUNDLE
            referrer = await client.get_manifest(name, found.digest)
            subject = referrer.subject()
            assert subject is not None and subject.digest == index.digest
            assert referrer.artifact_type == BUNDLE
            [layer] = referrer.layers()
            assert await client.get_blob(name, layer.digest) == bundle
            # No referrers at all: an empty list, not an error.
            child = index.children[0].digest
            assert await client.referrers(name, child) == []

    run(go())


class Tampering(httpx.AsyncBaseTransport):
    """Forwards to the real registry and flips a byte in every blob and manifest body."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        if response.status_code == 200 and body:
            body = bytes([body[0] ^ 0x01]) + body[1:]
        headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_content_altered_on_the_way_is_a_deny(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    name = f"{registry.host}/{repo_name}"
    blob = oci.push_blob(registry, repo_name, b"genuine payload")

    async def go() -> None:
        async with RegistryClient(
            [RegistryConfig(host=registry.host, insecure=True)],
            transport=Tampering(),
            environ={"DOCKER_CONFIG": str(tmp_path / "none")},
        ) as client:
            with pytest.raises(DigestMismatchError):
                await client.get_blob(name, blob.digest)
            with pytest.raises(DigestMismatchError):
                await client.get_manifest(name, image.digest)
            with pytest.raises(DigestMismatchError):
                await client.resolve(parse_reference(f"{name}:v1@{image.digest}"))

    run(go())


def test_bearer_flow_with_the_real_token_server_once_per_scope(
    token_registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    reg = token_registry
    assert reg.auth is not None
    image = oci.push_image(reg, repo_name, "v1")
    index = oci.push_index(reg, f"{repo_name}-idx", "v1")
    name = f"{reg.host}/{repo_name}"
    name2 = f"{reg.host}/{repo_name}-idx"
    reg.auth.reset()

    async def go() -> None:
        async with client_for(reg, tmp_path, with_credentials=True) as client:
            await asyncio.gather(
                *(client.resolve(parse_reference(f"{name}:v1")) for _ in range(3)),
                *(client.get_manifest(name, image.digest) for _ in range(5)),
                *(client.resolve(parse_reference(f"{name2}:v1")) for _ in range(3)),
            )
            manifest = await client.get_manifest(name, image.digest)
            await client.get_blob(name, manifest.layers()[0].digest)
            await client.get_manifest_if_exists(name, signature_tag(image.digest))
            for child in index.children:
                await client.get_manifest(name2, child.digest)
            assert client.stats.token_fetches == 2

    run(go())
    scope1 = f"repository:{repo_name}:pull"
    scope2 = f"repository:{repo_name}-idx:pull"
    assert reg.auth.count(scope=scope1) == 1
    assert reg.auth.count(scope=scope2) == 1
    assert reg.auth.count() == 2
    assert reg.auth.count(user=reg.username) == 2  # the configured credentials were used
    assert all(r.granted for r in reg.auth.requests)


def test_bearer_flow_anonymous(token_registry: Registry, repo_name: str, tmp_path: Path) -> None:
    reg = token_registry
    assert reg.auth is not None
    image = oci.push_image(reg, repo_name, "v1")
    reg.auth.reset()

    async def go() -> None:
        async with client_for(reg, tmp_path) as client:
            got = await client.resolve(parse_reference(f"{reg.host}/{repo_name}:v1"))
            assert got.digest == image.digest

    run(go())
    assert reg.auth.count(user=None) == 1 and reg.auth.count() == 1


@pytest.mark.parametrize("token_field", ["token", "access_token"])
def test_a_registry_that_refuses_anonymous_pulls(tmp_path: Path, token_field: Any) -> None:
    with running_registry(
        tmp_path / "reg", token_auth=True, anonymous_actions=(), token_field=token_field
    ) as reg:
        repo = "private/app"
        image = oci.push_image(reg, repo, "v1")
        name = f"{reg.host}/{repo}"

        async def anonymous() -> None:
            async with client_for(reg, tmp_path) as client:
                await client.resolve(parse_reference(f"{name}:v1"))

        assert reg.auth is not None
        reg.auth.reset()
        with pytest.raises(RegistryAuthError) as err:
            run(anonymous())
        assert err.value.exit_code == 3
        assert reg.auth.count() == 1  # a token that grants nothing is not fetched again

        async def authenticated() -> None:
            async with client_for(reg, tmp_path, with_credentials=True) as client:
                got = await client.resolve(parse_reference(f"{name}:v1"))
                assert got.digest == image.digest

        run(authenticated())


def test_default_transport_spreads_requests_over_small_pools(
    registry: Registry, repo_name: str, tmp_path: Path
) -> None:
    from gate.sources.registry_http import ShardedTransport

    blobs = [oci.push_blob(registry, repo_name, f"blob {i}".encode()) for i in range(40)]
    name = f"{registry.host}/{repo_name}"
    transport = ShardedTransport(16)

    async def go() -> None:
        async with RegistryClient(
            [RegistryConfig(host=registry.host, insecure=True)],
            transport=transport,
            environ={"DOCKER_CONFIG": str(tmp_path / "none")},
        ) as client:
            got = await asyncio.gather(*(client.get_blob(name, b.digest) for b in blobs))
            assert got == [f"blob {i}".encode() for i in range(40)]
            assert transport._in_flight == [0, 0, 0, 0]  # every response body was closed

    run(go())
    assert ShardedTransport.usable({}) and not ShardedTransport.usable({"https_proxy": "http://p"})
