"""Shared helpers for the red-team tests: a real registry, real signatures, `gate verify`."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gate.cli import main
from gate.signing import KeyPair
from testkit import cosign, oci
from testkit.registry import Registry
from tests.unit.helpers import write_policy


@dataclass
class Result:
    code: int
    report: dict[str, Any]
    manifests: str | None

    def failed(self) -> list[tuple[str, str]]:
        return [
            (f["check"], f["reason"]) for f in self.report["findings"] if f["outcome"] == "fail"
        ]


@dataclass
class World:
    registry: Registry
    key: KeyPair
    tmp: Path
    repo: str

    def signed_image(self, repo: str | None = None) -> oci.Descriptor:
        repo = repo or self.repo
        desc = oci.push_image(self.registry, repo, "1.0", seed=uuid.uuid4().hex)
        cosign.sign_image_legacy(self.registry, repo, desc.digest, key=self.key)
        return desc

    def unsigned_image(self, repo: str) -> oci.Descriptor:
        return oci.push_image(self.registry, repo, "1.0", seed=uuid.uuid4().hex)

    def policy(self, **spec: Any) -> Path:
        base: dict[str, Any] = {
            "keys": {"ci": {"publicKey": self.key.public_pem().decode()}},
            "images": [{"match": [f"{self.registry.host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }
        base.update(spec)
        return write_policy(self.tmp / f"policy-{uuid.uuid4().hex[:6]}.yaml", base)

    def verify(self, source: Path, policy: Path, *extra: str) -> Result:
        report = self.tmp / f"report-{uuid.uuid4().hex[:6]}.json"
        out = self.tmp / f"out-{uuid.uuid4().hex[:6]}.yaml"
        code = main(
            ["verify", str(source), "--policy", str(policy), "--report", str(report),
             "--manifests", str(out), *extra]
        )  # fmt: skip
        return Result(
            code,
            json.loads(report.read_text()),
            out.read_text() if out.exists() else None,
        )


def write_docs(directory: Path, *docs: dict[str, Any], name: str = "app.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump_all(docs))
    return directory
