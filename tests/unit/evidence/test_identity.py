"""Keyless identity checks against certificates minted by the private authority."""

from __future__ import annotations

from typing import Any

import pytest

from gate.errors import IdentityError
from gate.evidence.identity import KeylessPolicy, check_identity, read_identity
from gate.policy.model import KeylessIdentity
from testkit.plugin_sigstore import GITHUB_ISSUER
from testkit.sigstore_authority import Authority
from testkit.sigstore_certs import GitHubClaims

WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"


def _cert(authority: Authority, identity: str = WORKFLOW, issuer: str = GITHUB_ISSUER, **kw: Any):  # type: ignore[no-untyped-def]
    return authority.issue_certificate(identity, issuer, **kw).certificate


def _expect(**kw: Any) -> KeylessIdentity:
    return KeylessIdentity.model_validate({"issuer": GITHUB_ISSUER, **kw})


def test_reads_sans_issuer_and_claims(sigstore_authority: Authority) -> None:
    cert = _cert(sigstore_authority, github=GitHubClaims.for_workflow())
    ident = read_identity(cert)
    assert ident.sans == (WORKFLOW,)
    assert ident.issuer == GITHUB_ISSUER
    assert ident.claims["sourceRepositoryURI"] == "https://github.com/acme/app"
    assert ident.claims["sourceRepositoryRef"] == "refs/tags/v1.0.0"
    assert ident.claims["runnerEnvironment"] == "github-hosted"


def test_email_identity(sigstore_authority: Authority) -> None:
    cert = _cert(sigstore_authority, "alice@example.com", "https://accounts.example.com")
    ident = read_identity(cert)
    assert ident.sans == ("alice@example.com",)
    check_identity(
        ident,
        KeylessIdentity.model_validate(
            {"issuer": "https://accounts.example.com", "subject": "*@example.com"}
        ),
    )


def test_subject_glob_is_anchored(sigstore_authority: Authority) -> None:
    ident = read_identity(_cert(sigstore_authority))
    check_identity(
        ident, _expect(subject="https://github.com/acme/app/.github/workflows/*@refs/tags/*")
    )
    for bad in (
        "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/*",
        "github.com/acme/app/**",  # not anchored at the scheme
        "https://github.com/acme/app/.github/workflows/release.yml",  # no suffix wildcard
    ):
        with pytest.raises(IdentityError) as e:
            check_identity(ident, _expect(subject=bad))
        assert e.value.reason == "identity-mismatch"


def test_subject_regexp_is_anchored(sigstore_authority: Authority) -> None:
    ident = read_identity(_cert(sigstore_authority))
    check_identity(ident, _expect(subjectRegExp=r"https://github\.com/acme/.*"))
    with pytest.raises(IdentityError, match="not trusted"):
        check_identity(ident, _expect(subjectRegExp=r"acme/app"))  # would match as a search


def test_issuer_is_exact(sigstore_authority: Authority) -> None:
    ident = read_identity(_cert(sigstore_authority, issuer=GITHUB_ISSUER + "/evil"))
    with pytest.raises(IdentityError) as e:
        check_identity(ident, _expect(subject="**"))
    assert e.value.reason == "issuer-mismatch"


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        ({"repository": "acme/app"}, True),
        ({"repository": "https://github.com/acme/app"}, True),
        ({"repository": "acme/other"}, False),
        ({"ref": "refs/tags/v*"}, True),
        ({"ref": "refs/heads/*"}, False),
        ({"workflow": "https://github.com/acme/app/.github/workflows/release.yml@**"}, True),
        ({"workflow": "https://github.com/acme/app/.github/workflows/other.yml@**"}, False),
        ({"runnerEnvironment": "github-hosted"}, True),
        ({"runnerEnvironment": "self-hosted"}, False),
    ],
)
def test_github_claims(sigstore_authority: Authority, claims: dict[str, str], ok: bool) -> None:
    ident = read_identity(_cert(sigstore_authority, github=GitHubClaims.for_workflow()))
    expected = _expect(subject="**", github=claims)
    if ok:
        check_identity(ident, expected)
    else:
        with pytest.raises(IdentityError) as e:
            check_identity(ident, expected)
        assert e.value.reason == "identity-mismatch"


def test_github_claims_absent_is_a_mismatch(sigstore_authority: Authority) -> None:
    ident = read_identity(_cert(sigstore_authority))  # no GitHub extensions
    with pytest.raises(IdentityError) as e:
        check_identity(ident, _expect(subject="**", github={"repository": "acme/app"}))
    assert "found:    absent" in e.value.diagnostics()


def test_policy_adapter_raises_sigstore_error(sigstore_authority: Authority) -> None:
    from sigstore.errors import VerificationError

    p = KeylessPolicy(_expect(subject="https://nobody/*"))
    with pytest.raises(VerificationError):
        p.verify(_cert(sigstore_authority))
    assert p.failure is not None and p.failure.reason == "identity-mismatch"
    KeylessPolicy(_expect(subject="https://github.com/**")).verify(_cert(sigstore_authority))
