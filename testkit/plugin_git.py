"""pytest fixtures: throwaway keys, signed git repositories, signed Helm charts.

Keys are session-scoped factories (gpg key generation is the slow part), and
cached by name: ``pgp_keys("ops")`` returns the same key every time in a
session, ``pgp_keys("intruder")`` a different one. Repositories and chart
repository servers are per test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.chartrepo import ChartRepoServer
from testkit.gitrepo import GitRepo, ObjectFormat
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart
from testkit.pgp import PgpKey, PgpKeyFactory
from testkit.sshkeys import SshKey, SshKeyFactory


@pytest.fixture(scope="session")
def pgp_keys() -> Iterator[PgpKeyFactory]:
    """``pgp_keys(name="Test Signer", algo="ed25519", expired=False, revoked=False)``."""
    factory = PgpKeyFactory()
    try:
        yield factory
    finally:
        factory.cleanup()  # also stops each key's gpg-agent


@pytest.fixture(scope="session")
def ssh_keys() -> Iterator[SshKeyFactory]:
    """``ssh_keys(name="signer", algo="ed25519"|"ecdsa"|"rsa")``."""
    factory = SshKeyFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="session")
def pgp_key(pgp_keys: PgpKeyFactory) -> PgpKey:
    """The default release signer (ed25519)."""
    return pgp_keys("Release Signer")


@pytest.fixture(scope="session")
def ssh_key(ssh_keys: SshKeyFactory) -> SshKey:
    """The default SSH release signer (ed25519)."""
    return ssh_keys("release")


@pytest.fixture
def make_git_repo(tmp_path: Path) -> Callable[..., GitRepo]:
    """``make_git_repo(name="repo", object_format="sha1")``: a fresh, empty repository."""
    made: set[str] = set()

    def make(name: str = "repo", object_format: ObjectFormat = "sha1") -> GitRepo:
        if name in made:
            raise ValueError(f"repository {name!r} already made in this test")
        made.add(name)
        return GitRepo.init(tmp_path / "git" / name, object_format)

    return make


@pytest.fixture
def git_repo(make_git_repo: Callable[..., GitRepo]) -> GitRepo:
    """An empty SHA-1 repository on branch ``main``."""
    return make_git_repo()


@pytest.fixture(scope="session")
def helm_tool() -> Iterator[Helm]:
    """The real helm with isolated cache/config/data homes."""
    helm = Helm()
    try:
        yield helm
    finally:
        helm.cleanup()


@pytest.fixture(scope="session")
def signed_chart(
    helm_tool: Helm, pgp_key: PgpKey, tmp_path_factory: pytest.TempPathFactory
) -> PackagedChart:
    """``demo-0.1.0.tgz`` + ``.prov`` signed by ``pgp_key``. Treat as read-only."""
    return build_signed_chart(helm_tool, tmp_path_factory.mktemp("signed-chart"), pgp_key)


@pytest.fixture
def chart_repo(helm_tool: Helm) -> Iterator[ChartRepoServer]:
    """A running, empty HTTP chart repository; ``chart_repo.add(chart)`` to publish."""
    with ChartRepoServer(helm_tool) as server:
        yield server
