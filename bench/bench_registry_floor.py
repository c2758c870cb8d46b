"""Benchmark: the registry I/O floor of image verification, with no verification.

For N distinct images in a local registry (distribution 2.8.2), each with a
legacy ``sha256-<hex>.sig`` signature manifest (one simple-signing layer),
time what verification must fetch, with the same client and concurrency the
gate uses, and nothing else: resolve the tag; read the ``.sig`` manifest and
its layer blobs; ask for referrers (the registry has no API, so the
``sha256-<hex>`` fallback tag), and read any referrer manifests and bundle
blobs. Each run uses a fresh client (no caches: cold). The verification
benchmark divides its cold time by this floor.

Run: ``make bench`` or ``python bench/bench_registry_floor.py [N] [CONCURRENCY]``.
Import :func:`io_floor` to measure the floor over your own pushed images.
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import Sequence

from gate.policy.model import RegistryConfig
from gate.reference import ImageReference, parse_reference
from gate.sources.registry import RegistryClient, signature_tag
from testkit import oci
from testkit.registry import Registry, running_registry

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
REPEATS = 5


async def _fetch_one(client: RegistryClient, ref: ImageReference) -> int:
    """Every fetch the verifier makes for ``ref``; returns the bytes read."""
    desc = await client.resolve(ref)
    total = desc.size
    repo = ref.name

    async def legacy() -> int:
        sig = await client.get_manifest_if_exists(repo, signature_tag(desc.digest))
        if sig is None:
            return 0
        blobs = await asyncio.gather(*(client.get_blob(repo, d.digest) for d in sig.layers()))
        return sig.size + sum(len(b) for b in blobs)

    async def bundles() -> int:
        n = 0
        for found in await client.referrers(repo, desc.digest, artifact_type=BUNDLE):
            manifest = await client.get_manifest(repo, found.digest)
            layers = manifest.layers()
            n += manifest.size + (
                len(await client.get_blob(repo, layers[0].digest)) if layers else 0
            )
        return n

    parts = await asyncio.gather(legacy(), bundles())
    return total + sum(parts)


async def io_floor_async(
    configs: Sequence[RegistryConfig], refs: Sequence[ImageReference], *, concurrency: int = 16
) -> tuple[float, int, int]:
    """One cold pass: (seconds, HTTP requests, bytes read)."""
    start = time.perf_counter()
    async with RegistryClient(configs, concurrency=concurrency, deadline_s=300) as client:
        sizes = await asyncio.gather(*(_fetch_one(client, r) for r in refs))
        requests = client.stats.requests_sent
    return time.perf_counter() - start, requests, sum(sizes)


def io_floor(
    registry: Registry, refs: Sequence[str], *, concurrency: int = 16, repeats: int = REPEATS
) -> float:
    """Median seconds of ``repeats`` cold passes over ``refs`` in ``registry``."""
    configs = [RegistryConfig(host=registry.host, insecure=True)]
    parsed = [parse_reference(r) for r in refs]
    times = [
        asyncio.run(io_floor_async(configs, parsed, concurrency=concurrency))[0]
        for _ in range(repeats)
    ]
    return statistics.median(times)


def push_signed_images(registry: Registry, n: int) -> list[str]:
    """N distinct images, each with a legacy signature manifest of one layer."""
    refs = []
    for i in range(n):
        repo = f"bench/app{i % 20}"
        desc = oci.push_image(registry, repo, f"v{i}", seed=f"bench-{i}")
        payload = json.dumps(
            {
                "critical": {
                    "identity": {"docker-reference": f"{registry.host}/{repo}"},
                    "image": {"docker-manifest-digest": desc.digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            }
        ).encode()
        layer = oci.Layer(
            payload,
            oci.COSIGN_SIMPLESIGNING,
            {"dev.cosignproject.cosign/signature": base64.b64encode(b"x" * 71).decode()},
        )
        oci.push_signature_manifest(registry, repo, desc.digest, [layer])
        refs.append(registry.ref(repo, f"v{i}"))
    return refs


def main(argv: Sequence[str]) -> int:
    n = int(argv[1]) if len(argv) > 1 else 200
    concurrency = int(argv[2]) if len(argv) > 2 else 16
    with running_registry() as registry:
        refs = push_signed_images(registry, n)
        configs = [RegistryConfig(host=registry.host, insecure=True)]
        parsed = [parse_reference(r) for r in refs]
        runs = [
            asyncio.run(io_floor_async(configs, parsed, concurrency=concurrency))
            for _ in range(REPEATS)
        ]
    times = [t for t, _, _ in runs]
    _, requests, size = runs[0]
    print(
        f"registry I/O floor, {n} signed images, concurrency {concurrency}: "
        f"median {statistics.median(times) * 1000:.0f} ms "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; {REPEATS} cold runs), "
        f"{requests} HTTP requests, {size / 1024:.0f} KiB read"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
