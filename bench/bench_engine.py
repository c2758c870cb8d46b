"""Benchmark: the engine's own work on a large plain-YAML source.

Measures strict YAML loading, image extraction, policy matching, pinning and
dumping for N Deployments (each with an init container and two containers),
with an in-process image verifier that answers at once, so the numbers are
the gate's own overhead, not registry I/O. Run: ``make bench`` or
``python bench/bench_engine.py [N]``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from gate.engine import Context, Engine, GateRequest, ImageCheck, SourceInfo, Verifiers
from gate.policy import parse_policy
from gate.reference import ImageReference

DIGEST = "sha256:" + "ab" * 32
REPO = "registry.example.com/acme"


def _public_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class InstantImages:
    def verify_images(
        self, ctx: Context, checks: Sequence[ImageCheck]
    ) -> Mapping[ImageReference, str]:
        for c in checks:
            ctx.findings.passed("image.signature", str(c.ref))
        return {c.ref: DIGEST for c in checks}


def make_source(root: Path, n: int) -> None:
    docs = []
    for i in range(n):
        docs.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": f"app-{i}", "labels": {"app": f"app-{i}"}},
                "spec": {
                    "replicas": 2,
                    "template": {
                        "metadata": {"labels": {"app": f"app-{i}"}},
                        "spec": {
                            "initContainers": [{"name": "init", "image": f"{REPO}/init:{i % 50}"}],
                            "containers": [
                                {"name": "app", "image": f"{REPO}/app-{i}:v1"},
                                {"name": "proxy", "image": f"{REPO}/proxy:1.0"},
                            ],
                        },
                    },
                },
            }
        )
    for chunk in range(0, n, 100):
        (root / f"apps-{chunk:05d}.yaml").write_text(yaml.safe_dump_all(docs[chunk : chunk + 100]))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    policy_doc = {
        "apiVersion": "gitops-gate.dev/v1alpha1",
        "kind": "GatePolicy",
        "metadata": {"name": "bench"},
        "spec": {
            "keys": {"ci": {"publicKey": _public_pem()}},
            "images": [
                {"match": ["registry.example.com/acme/**"], "signatures": {"signers": ["ci"]}}
            ],
        },
    }
    policy = parse_policy(yaml.safe_dump(policy_doc).encode(), source="bench")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp)
        make_source(src, n)
        size = sum(p.stat().st_size for p in src.iterdir())
        engine = Engine(policy, Verifiers(images=InstantImages()))
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            result = engine.run(GateRequest(source=SourceInfo(path=src)))
            runs.append(time.perf_counter() - t0)
            assert result.exit_code == 0, result.report.render_text()
        images = len(result.report.images)
    print(
        f"engine: {n} Deployments ({size / 1e6:.1f} MB YAML, {3 * n} image fields, "
        f"{images} distinct images): median {statistics.median(runs) * 1000:.0f} ms, "
        f"best {min(runs) * 1000:.0f} ms over {len(runs)} runs "
        "(strict load + extract + match + pin + dump; verifier answers instantly)"
    )


if __name__ == "__main__":
    main()
