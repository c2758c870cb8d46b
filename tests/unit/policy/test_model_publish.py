"""``spec.output.publish``: the key that signs the artifact ``gate publish`` pushes."""

from __future__ import annotations

from typing import Any

import pytest

from gate.errors import PolicyError
from tests.unit.helpers import make_policy

RULES: dict[str, Any] = {"images": [{"match": ["docker.io/**"], "exempt": "test"}]}


def _spec(output: dict[str, Any]) -> dict[str, Any]:
    return {**RULES, "output": output}


def test_absent_by_default() -> None:
    assert make_policy(RULES).policy.spec.output.publish is None


def test_key_path() -> None:
    spec = make_policy(_spec({"publish": {"key": "publish.key"}})).policy.spec
    assert spec.output.publish is not None
    assert spec.output.publish.key == "publish.key"
    assert spec.output.vsa is None  # independent of the VSA key


@pytest.mark.parametrize(
    ("publish", "fragment"),
    [
        ({}, "key"),
        ({"key": ""}, "key"),
        ({"key": "awskms:///alias/gate"}, "not a URI"),
        ({"key": "https://keys.example.com/gate.key"}, "not a URI"),
        ({"key": "/etc/gate/"}, "directory"),
        ({"key": " publish.key"}, "cosign key file"),
        ({"key": "publish.key", "password": "x"}, "password"),
    ],
)
def test_invalid(publish: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as e:
        make_policy(_spec({"publish": publish}))
    text = e.value.diagnostics()
    assert "publish" in text
    assert fragment in text


def test_publish_needs_pinned_digests() -> None:
    with pytest.raises(PolicyError) as e:
        make_policy(_spec({"pinDigests": False, "publish": {"key": "k"}}))
    assert "pinDigests" in e.value.diagnostics()
