"""Attack: an unsigned image mounted as an image volume (``volumes[].image.reference``).

Kubernetes (ImageVolume, beta since 1.33) pulls ``spec.volumes[*].image.reference``
with the pod's image credentials and mounts its filesystem into the containers. A
signed container whose command runs a file from that volume executes unsigned code,
so the volume's image is an image the gate must verify (and pin) like a container's.
Before the fix the gate did not see it at all (not even an ``unchecked-image-field``
warning: the ``image`` key there holds an object, not a string) and allowed the pod.
"""

from __future__ import annotations

import uuid
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


def _pod(image: str, volume_image: str | dict[str, Any]) -> dict[str, Any]:
    volume = volume_image if isinstance(volume_image, dict) else {"reference": volume_image}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": image,
                    "command": ["/payload/run"],
                    "volumeMounts": [{"name": "payload", "mountPath": "/payload"}],
                }
            ],
            "volumes": [{"name": "payload", "image": volume}],
        },
    }


def _raw_volume(pod: dict[str, Any], source: Any) -> dict[str, Any]:
    pod["spec"]["volumes"][0]["image"] = source
    return pod


def test_unsigned_image_volume_is_denied(world: World) -> None:
    world.signed_image()
    evil_repo = f"{world.repo}-payload"
    world.unsigned_image(evil_repo)
    src = write_docs(
        world.tmp / "src",
        _pod(world.registry.ref(world.repo, "1.0"), world.registry.ref(evil_repo, "1.0")),
    )
    result = world.verify(src, world.policy())
    assert result.code == 1, result.report["findings"]
    assert result.manifests is None
    assert ("image.signature", "unsigned") in result.failed()


def test_image_volume_in_a_deployment_template_is_verified_and_pinned(world: World) -> None:
    app = world.signed_image()
    data_repo = f"{world.repo}-data"
    data = world.signed_image(data_repo)
    pod = _pod(world.registry.ref(world.repo, "1.0"), world.registry.ref(data_repo, "1.0"))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": pod["spec"]}},
    }
    result = world.verify(write_docs(world.tmp / "src", deployment), world.policy())
    assert result.code == 0, result.report["findings"]
    assert result.manifests is not None
    spec = yaml.safe_load(result.manifests)["spec"]["template"]["spec"]
    assert (
        spec["containers"][0]["image"] == world.registry.ref(world.repo, "1.0") + "@" + app.digest
    )
    assert spec["volumes"][0]["image"]["reference"] == (
        world.registry.ref(data_repo, "1.0") + "@" + data.digest
    )


@pytest.mark.parametrize("volume", [{"reference": 42}, {"pullPolicy": "Always"}, "evil:1"])
def test_unreadable_image_volume_is_denied(world: World, volume: Any) -> None:
    world.signed_image()
    src = write_docs(
        world.tmp / f"src-{uuid.uuid4().hex[:6]}",
        _raw_volume(_pod(world.registry.ref(world.repo, "1.0"), "unused:1"), volume),
    )
    result = world.verify(src, world.policy())
    assert result.code == 1, result.report["findings"]
    assert result.failed() == [("manifests.images", "invalid-image-field")]
