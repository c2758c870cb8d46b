"""Git repositories for ``make demo``: a signed release, and two ways to fake one.

``build_git_demo(directory)`` makes an SSH key and three checkouts of the same small
app (``deploy/`` holds a kustomization with one Deployment):

- ``signed``: HEAD carries ``v1.0.0``, an annotated tag signed with the key: allowed;
- ``retagged``: the signed ``v1.0.0`` tag object re-pushed as ``v2.0.0`` (``git
  verify-tag v2.0.0`` passes; the gate denies it with ``tag-name-mismatch``);
- ``unsigned``: a later commit (the image bumped to 1.1.0) tagged ``v1.1.0`` without
  a signature: denied with ``unsigned``.

``GitDemo.policy_spec()`` is the ``keys`` and ``source`` part of a GatePolicy spec that
trusts the key; merge it into the demo policy. Gate the app path ``<repo>/deploy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.gitrepo import GitRepo, SshSigner, release_repo
from testkit.sshkeys import SshKey, generate_ssh_key

APP_PATH = "deploy"


@dataclass(frozen=True)
class GitDemo:
    key: SshKey
    signed: GitRepo
    retagged: GitRepo
    unsigned: GitRepo

    def app(self, repo: GitRepo) -> Path:
        """The directory to run ``gate verify`` / ``gate generate`` in."""
        return repo.path / APP_PATH

    def policy_spec(self) -> dict[str, Any]:
        return {
            "keys": {"release-team": {"ssh": self.key.public_line}},
            "source": {"git": {"require": "tag", "tags": ["v*"], "signers": ["release-team"]}},
        }

    @property
    def expected(self) -> dict[str, tuple[str, str | None]]:
        """Scenario -> (decision, the reason the demo should show)."""
        return {
            "signed": ("allow", None),
            "retagged": ("deny", "tag-name-mismatch"),
            "unsigned": ("deny", "unsigned"),
        }


def build_git_demo(directory: Path, key: SshKey | None = None) -> GitDemo:
    """Create the demo key (unless given) and the three repositories under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    if key is None:
        keys = directory / "keys"
        keys.mkdir(exist_ok=True)
        key = generate_ssh_key(keys, "release-team", principal="release-team@example.test")
    signer = SshSigner(key)
    signed = release_repo(directory / "signed", signer, tag="v1.0.0")

    retagged = release_repo(directory / "retagged", signer, tag="v1.0.0")
    retagged.retag("v1.0.0", "v2.0.0")
    retagged.git("tag", "-d", "v1.0.0")

    unsigned = release_repo(directory / "unsigned", signer, tag="v1.0.0")
    deployment = (unsigned.path / APP_PATH / "deployment.yaml").read_bytes()
    unsigned.commit(
        {f"{APP_PATH}/deployment.yaml": deployment.replace(b"app:1.0.0", b"app:1.1.0")},
        "bump to 1.1.0",
    )
    unsigned.tag("v1.1.0")  # annotated, not signed
    return GitDemo(key, signed, retagged, unsigned)
