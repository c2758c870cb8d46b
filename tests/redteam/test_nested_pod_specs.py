"""Attack: an unsigned image in a custom resource's pod template at an unusual path.

The gate looked for pod templates at ``spec.template.spec`` and
``spec.jobTemplate.spec.template.spec`` only. KEDA's ScaledJob keeps its Job spec
under ``spec.jobTargetRef`` (so its pods come from ``spec.jobTargetRef.template.spec``),
Crossplane's DeploymentRuntimeConfig under ``spec.deploymentTemplate.spec.template.spec``,
and the Prometheus operator adds ``spec.containers`` to the pods it runs. Each was
allowed with only an ``unchecked-image-field`` warning; the controller then runs the
unsigned image. Now any container list with string images is a pod spec, verified and
pinned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.signing import KeyPair, generate_key_pair
from testkit.registry import Registry
from tests.redteam._world import World, write_docs

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def world(registry: Registry, key: KeyPair, tmp_path: Path, repo_name: str) -> World:
    return World(registry, key, tmp_path, repo_name)


def _pod_spec(image: str) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": image}]}


SHAPES = {
    "keda-scaledjob": lambda image: {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledJob",
        "metadata": {"name": "j"},
        "spec": {"jobTargetRef": {"parallelism": 1, "template": {"spec": _pod_spec(image)}}},
    },
    "crossplane-runtime-config": lambda image: {
        "apiVersion": "pkg.crossplane.io/v1beta1",
        "kind": "DeploymentRuntimeConfig",
        "metadata": {"name": "r"},
        "spec": {"deploymentTemplate": {"spec": {"template": {"spec": _pod_spec(image)}}}},
    },
    "prometheus-extra-container": lambda image: {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "main"},
        "spec": {"containers": [{"name": "sidecar", "image": image}]},
    },
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_unsigned_image_in_a_nested_pod_spec_is_denied(world: World, shape: str) -> None:
    evil = f"{world.repo}-evil"
    world.unsigned_image(evil)
    src = write_docs(world.tmp / "src", SHAPES[shape](world.registry.ref(evil, "1.0")))
    result = world.verify(src, world.policy())
    assert result.code == 1, result.report["findings"]
    assert result.manifests is None
    assert result.failed() == [("image.signature", "unsigned")]


def test_signed_image_in_a_nested_pod_spec_is_pinned(world: World) -> None:
    desc = world.signed_image()
    doc = SHAPES["keda-scaledjob"](world.registry.ref(world.repo, "1.0"))
    result = world.verify(write_docs(world.tmp / "src", doc), world.policy())
    assert result.code == 0, result.report["findings"]
    assert result.manifests is not None
    out = yaml.safe_load(result.manifests)
    image = out["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{world.registry.ref(world.repo, '1.0')}@{desc.digest}"
