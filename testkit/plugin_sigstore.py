"""pytest fixtures for the private Sigstore authority (``testkit.sigstore_authority``).

Keys and CAs are minted once per session (a few milliseconds); each test mints its own
bundles, which also grows the shared log, so later entries sit deep in a real tree.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier, policy

from testkit.sigstore_authority import Authority, GitHubClaims

#: The OIDC issuer of GitHub Actions, which most tests sign as.
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture(scope="session")
def sigstore_authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """A throwaway Fulcio + CT log + Rekor; ``.trusted_root_path`` is its trust root."""
    return Authority.create(tmp_path_factory.mktemp("sigstore"))


@pytest.fixture(scope="session")
def sigstore_tsa_authority(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """Like :func:`sigstore_authority`, plus an RFC 3161 timestamp authority in its root."""
    return Authority.create(tmp_path_factory.mktemp("sigstore-tsa"), with_tsa=True)


@pytest.fixture(scope="session")
def sigstore_trusted_root(sigstore_authority: Authority) -> Path:
    """Path of the authority's ``trusted_root.json``."""
    return sigstore_authority.trusted_root_path


@pytest.fixture(scope="session")
def sigstore_verifier(sigstore_authority: Authority) -> Verifier:
    """The real sigstore-python verifier, trusting only the private authority."""
    return verifier_for(sigstore_authority)


@pytest.fixture
def github_claims() -> GitHubClaims:
    """Claims of a release workflow run in ``acme/app`` at ``refs/tags/v1.0.0``."""
    return GitHubClaims.for_workflow()


@pytest.fixture
def github_identity_policy(github_claims: GitHubClaims) -> policy.Identity:
    """Exact identity policy matching :func:`github_claims`."""
    return policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER)


@pytest.fixture
def sign_github_blob(
    sigstore_authority: Authority, github_claims: GitHubClaims
) -> Callable[..., dict[str, Any]]:
    """``sign(data, **kw) -> bundle dict`` as the :func:`github_claims` workflow."""

    def sign(data: bytes, **kwargs: Any) -> dict[str, Any]:
        return sigstore_authority.sign_blob(
            data,
            identity=github_claims.identity,
            issuer=GITHUB_ISSUER,
            github=github_claims,
            **kwargs,
        )

    return sign


def verifier_for(authority: Authority) -> Verifier:
    """The real sigstore-python verifier trusting only ``authority``."""
    return Verifier(trusted_root=TrustedRoot.from_file(str(authority.trusted_root_path)))


def to_bundle(bundle: dict[str, Any]) -> Bundle:
    """A minted bundle dict as sigstore-python's ``Bundle``."""
    return Bundle.from_json(json.dumps(bundle))
