"""gate.evidence.fulcio: validity at the log time, chain to the trust root, embedded SCT."""

from __future__ import annotations

import datetime as dt

import pytest

from gate.errors import VerificationError
from gate.evidence import fulcio
from gate.sources.trustroot import load_trust_root
from testkit.sigstore_authority import FORGERIES, Authority, GitHubClaims

ISSUER = "https://token.actions.githubusercontent.com"
CLAIMS = GitHubClaims.for_workflow()


def _issue(authority: Authority, forgery: str | None = None) -> fulcio.x509.Certificate:
    kw = {"forgery": FORGERIES[forgery]} if forgery else {}
    issued = authority.issue_certificate(CLAIMS.identity, ISSUER, github=CLAIMS, **kw)
    return issued.certificate


def test_genuine_certificate(sigstore_authority: Authority) -> None:
    cert = _issue(sigstore_authority)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    at = cert.not_valid_before_utc + dt.timedelta(seconds=30)
    chain = fulcio.verify_certificate(cert, root, at)
    # Every trust-root certificate is an anchor (as in sigstore-python): the issuer suffices.
    assert chain[0] == sigstore_authority.intermediate_certificate


@pytest.mark.parametrize(
    "when", [dt.timedelta(seconds=-1), dt.timedelta(minutes=10, seconds=1), dt.timedelta(days=1)]
)
def test_outside_validity_is_certificate_expired(
    sigstore_authority: Authority, when: dt.timedelta
) -> None:
    cert = _issue(sigstore_authority)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    with pytest.raises(VerificationError) as e:
        fulcio.verify_certificate(cert, root, cert.not_valid_before_utc + when)
    assert e.value.reason == "certificate-expired"


def test_validity_bounds_are_inclusive(sigstore_authority: Authority) -> None:
    cert = _issue(sigstore_authority)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    fulcio.verify_certificate(cert, root, cert.not_valid_before_utc)
    fulcio.verify_certificate(cert, root, cert.not_valid_after_utc)


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("untrusted-ca", "untrusted-signer"),
        ("sct-untrusted-log", "sct-invalid"),
        ("sct-over-other-data", "sct-invalid"),
    ],
)
def test_forgeries(sigstore_authority: Authority, forgery: str, reason: str) -> None:
    cert = _issue(sigstore_authority, forgery)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    with pytest.raises(VerificationError) as e:
        fulcio.verify_certificate(cert, root, cert.not_valid_before_utc + dt.timedelta(seconds=5))
    assert e.value.reason == reason


def test_another_authoritys_certificate(sigstore_authority: Authority, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = Authority.create(tmp_path / "other")
    cert = _issue(other)
    root = load_trust_root(sigstore_authority.trusted_root_path)
    with pytest.raises(VerificationError) as e:
        fulcio.verify_certificate(cert, root, cert.not_valid_before_utc + dt.timedelta(seconds=5))
    assert e.value.reason == "untrusted-signer"


def test_not_a_certificate() -> None:
    with pytest.raises(VerificationError):
        fulcio.load_certificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
