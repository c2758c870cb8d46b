"""Benchmark: verifying N distinct signed images in a local registry, against the I/O floor.

N images (default 200) in a real registry (distribution 2.8.2), each signed
as cosign would (``--form``: ``legacy-key`` ECDSA P-256 ``.sig`` by default,
``keyless-bundle`` for Sigstore bundle referrers from the test authority,
``mixed`` for half of each). Measured, alternating, ``REPEATS`` times:

- **cold**: ``CosignImageVerifier.verify_images`` over all N with a fresh
  client (no caches), default concurrency 16;
- **floor**: the same manifest and blob fetches with the same client and
  concurrency and no verification (``bench_registry_floor.io_floor_async``).

Prints both medians and their ratio (the aim: below 1.5, a few seconds on 2 cores).

Run: ``python bench/bench_images.py [N] [--form legacy-key|keyless-bundle|mixed]``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml
from bench_registry_floor import io_floor_async

from gate.engine import Context, Findings, GateRequest, ImageCheck, SourceInfo
from gate.images import CosignImageVerifier
from gate.policy import image_rule_for, parse_policy
from gate.reference import parse_reference
from gate.report import Report
from gate.signing import generate_key_pair
from testkit import cosign, oci
from testkit.registry import running_registry
from testkit.sigstore_authority import Authority, GitHubClaims

REPEATS = 5
ISSUER = "https://token.actions.githubusercontent.com"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--form", choices=("legacy-key", "keyless-bundle", "mixed"), default="mixed")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args(argv[1:])
    key = generate_key_pair()
    claims = GitHubClaims.for_workflow()
    with tempfile.TemporaryDirectory() as tmp, running_registry() as registry:
        authority = Authority.create(Path(tmp) / "sigstore")
        keyless = cosign.Keyless(authority, claims.identity, ISSUER, claims)
        t0 = time.perf_counter()
        refs = []
        for i in range(args.n):
            repo = f"bench/app{i % 20}"
            desc = oci.push_image(registry, repo, f"v{i}", seed=f"bench-{i}")
            bundle_form = args.form == "keyless-bundle" or (args.form == "mixed" and i % 2)
            if bundle_form:
                cosign.sign_image_bundle(registry, repo, desc, keyless=keyless, created=None)
            else:
                cosign.sign_image_legacy(registry, repo, desc.digest, key=key)
            refs.append(registry.ref(repo, f"v{i}"))
        setup = time.perf_counter() - t0
        spec = {
            "keys": {
                "ci": {"publicKey": key.public_pem().decode()},
                "release": {"keyless": {"issuer": ISSUER, "subject": claims.identity}},
            },
            "trustRoots": {"sigstore": str(authority.trusted_root_path)},
            "images": [
                {"match": [f"{registry.host}/**"], "signatures": {"signers": ["ci", "release"]}}
            ],
            "registries": [{"host": registry.host, "insecure": True}],
        }
        doc = {
            "apiVersion": "gitops-gate.dev/v1alpha1",
            "kind": "GatePolicy",
            "metadata": {"name": "bench"},
            "spec": spec,
        }
        loaded = parse_policy(yaml.safe_dump(doc).encode(), source="<bench>")
        parsed = [parse_reference(r) for r in refs]
        checks = []
        for ref in parsed:
            match = image_rule_for(loaded.policy.spec, ref)
            assert match is not None
            checks.append(ImageCheck(ref, match[0], match[1]))

        cold: list[float] = []
        floor: list[float] = []
        for _ in range(REPEATS):
            report = Report("bench", loaded.digest, "bench", None, None)
            ctx = Context(
                loaded,
                GateRequest(SourceInfo(Path("."))),
                dt.datetime.now(dt.UTC),
                Findings(report),
            )
            start = time.perf_counter()
            verified = CosignImageVerifier(concurrency=args.concurrency).verify_images(ctx, checks)
            cold.append(time.perf_counter() - start)
            if len(verified) != len(checks) or report.failures:
                print("verification failed:", report.failures[:3], file=sys.stderr)
                return 1
            floor.append(
                asyncio.run(
                    io_floor_async(
                        loaded.policy.spec.registries, parsed, concurrency=args.concurrency
                    )
                )[0]
            )
    c, f = statistics.median(cold), statistics.median(floor)
    print(
        f"images: {args.n} distinct signed images ({args.form}), concurrency {args.concurrency}, "
        f"{REPEATS} alternating cold runs (setup {setup:.1f}s)\n"
        f"  cold verify : median {c * 1000:.0f} ms (min {min(cold) * 1000:.0f}, "
        f"max {max(cold) * 1000:.0f})\n"
        f"  I/O floor   : median {f * 1000:.0f} ms (min {min(floor) * 1000:.0f}, "
        f"max {max(floor) * 1000:.0f})\n"
        f"  ratio       : {c / f:.2f} (aim < 1.5)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
