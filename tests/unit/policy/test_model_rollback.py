"""``spec.source.git.rollback``: where the last allowed revision lives, and how to compare."""

from __future__ import annotations

from typing import Any

import pytest

from gate.errors import PolicyError
from tests.unit.helpers import make_policy

KEYS = {"k": {"ssh": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBase64Key release"}}
RULES: dict[str, Any] = {"images": [{"match": ["docker.io/**"], "exempt": "test"}]}


def _spec(git: dict[str, Any]) -> dict[str, Any]:
    return {**RULES, "keys": KEYS, "source": {"git": {"signers": ["k"], **git}}}


def test_absent_by_default() -> None:
    git = make_policy(_spec({})).policy.spec.source.git
    assert git is not None and git.rollback is None


@pytest.mark.parametrize("mode", ["descendant", "version"])
def test_modes(mode: str) -> None:
    git = make_policy(_spec({"rollback": {"state": "state.db", "mode": mode}})).policy.spec
    assert git.source.git is not None and git.source.git.rollback is not None
    assert git.source.git.rollback.mode == mode
    assert git.source.git.rollback.state == "state.db"


def test_mode_defaults_to_descendant() -> None:
    spec = make_policy(_spec({"rollback": {"state": "/var/lib/gate/state.db"}})).policy.spec
    assert spec.source.git is not None and spec.source.git.rollback is not None
    assert spec.source.git.rollback.mode == "descendant"


@pytest.mark.parametrize(
    ("git", "fragment"),
    [
        ({"rollback": {}}, "state"),
        ({"rollback": {"state": ""}}, "state"),
        ({"rollback": {"state": "s.db", "mode": "newer"}}, "mode"),
        ({"rollback": {"state": "s.db", "mod": "version"}}, "unknown field"),
        ({"rollback": {"state": ":memory:"}}, "not a URI"),
        ({"rollback": {"state": "file:state.db?mode=memory"}}, "not a URI"),
        ({"rollback": {"state": "https://state.example.com/db"}}, "not a URI"),
        ({"rollback": {"state": "/var/lib/gate/"}}, "directory"),
        ({"rollback": {"state": " state.db"}}, "state file"),
        ({"rollback": "state.db"}, "rollback"),
        # version mode needs a release tag to read the version from
        ({"require": "commit", "rollback": {"state": "s.db", "mode": "version"}}, "require"),
    ],
)
def test_invalid(git: dict[str, Any], fragment: str) -> None:
    with pytest.raises(PolicyError) as e:
        make_policy(_spec(git))
    assert fragment in e.value.message


@pytest.mark.parametrize("require", ["commit", "tag", "tag-and-commit"])
def test_descendant_with_any_require(require: str) -> None:
    make_policy(_spec({"require": require, "rollback": {"state": "s.db"}}))


@pytest.mark.parametrize("require", ["tag", "tag-and-commit"])
def test_version_with_tags(require: str) -> None:
    make_policy(_spec({"require": require, "rollback": {"state": "s.db", "mode": "version"}}))


def test_policy_check_says_plainly_whether_rollback_is_checked() -> None:
    from gate.cli.policy_check import describe

    off = describe(make_policy(_spec({})))
    assert "rollback: no spec.source.git.rollback: NOT checked" in off
    on = describe(make_policy(_spec({"rollback": {"state": "s.db", "mode": "version"}})))
    assert "rollback: version: the release tag's version must not be lower" in on
    assert "state s.db" in on
    descent = describe(make_policy(_spec({"rollback": {"state": "/var/lib/gate/s.db"}})))
    assert "rollback: descendant: HEAD must be the last allowed commit or descend" in descent
