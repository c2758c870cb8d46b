"""Small builders shared by unit tests: policies and source directories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gate.policy import LoadedPolicy, parse_policy


def policy_doc(spec: dict[str, Any], name: str = "test") -> dict[str, Any]:
    return {
        "apiVersion": "gitops-gate.dev/v1alpha1",
        "kind": "GatePolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def make_policy(spec: dict[str, Any], name: str = "test") -> LoadedPolicy:
    return parse_policy(yaml.safe_dump(policy_doc(spec, name)).encode(), source="<test>")


def write_policy(path: Path, spec: dict[str, Any], name: str = "test") -> Path:
    path.write_text(yaml.safe_dump(policy_doc(spec, name)))
    return path


def deployment(name: str, *images: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": f"i{i}", "image": im} for i, im in enumerate(init)],
                    "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
                }
            }
        },
    }


def write_source(path: Path, *docs: dict[str, Any], filename: str = "app.yaml") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / filename).write_text(yaml.safe_dump_all(docs))
    return path


KEY_PEM_SPEC: dict[str, Any] = {}
