"""cli/cli attestation vectors through ``gate verify-attestation``, offline (vectors README).

- ``reusable-workflow-attestation.sigstore.json`` verifies for
  ``reusable-workflow-artifact`` with ``--repo malancas/attest-demo`` and the
  signer workflow ``github/artifact-attestations-workflows/.github/workflows/attest.yml``
  (the certificate's SAN is the reusable workflow, its source repository the caller);
- ``custom-issuer.sigstore.json`` verifies for ``custom-issuer-artifact`` with
  issuer ``https://token.actions.githubusercontent.com/hammer-time``;
- ``sigstoreBundle-invalid-signature.json`` fails (its entry is ``intoto``
  0.0.2, which sigstore-python refuses: our own path reaches the signature);
- the private-repository bundle has no log entry and an RFC 3161 timestamp
  from GitHub's own instance, which the provided trust root does not list: a
  precise deny, never a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import verify_attestation as va
from tests.conformance._vectors import VECTORS, run_verb

GH = VECTORS / "gh-attestations"
ATTEST_WORKFLOW = "github/artifact-attestations-workflows/.github/workflows/attest.yml"

pytestmark = pytest.mark.skipif(
    not GH.is_dir(), reason=f"gh-attestations vectors not found at {GH} (set GATE_VECTORS)"
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = run_verb(
        va.add_arguments, va.run, [*argv, "--custom-trusted-root", str(GH / "trusted_root.json")]
    )
    return code, capsys.readouterr().err


def test_reusable_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "reusable-workflow-artifact"),
        "--bundle",
        str(GH / "reusable-workflow-attestation.sigstore.json"),
        "--repo",
        "malancas/attest-demo",
        "--signer-workflow",
        ATTEST_WORKFLOW,
    )
    assert code == 0, err


def test_reusable_workflow_by_owner_and_digest(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        "sha256:49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25",
        "--bundle",
        str(GH / "reusable-workflow-attestation.sigstore.json"),
        "--owner",
        "malancas",
        "--signer-workflow",
        ATTEST_WORKFLOW,
    )
    assert code == 0, err


def test_reusable_workflow_default_identity_is_the_repository(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Without --signer-workflow gh expects the repository's own workflow to have signed.
    code, err = _run(
        capsys,
        str(GH / "reusable-workflow-artifact"),
        "--bundle",
        str(GH / "reusable-workflow-attestation.sigstore.json"),
        "--repo",
        "malancas/attest-demo",
    )
    assert code == 1 and "(identity-mismatch)" in err, err


def test_wrong_repository(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "reusable-workflow-artifact"),
        "--bundle",
        str(GH / "reusable-workflow-attestation.sigstore.json"),
        "--repo",
        "malancas/other",
        "--signer-workflow",
        ATTEST_WORKFLOW,
    )
    assert code == 1 and "(identity-mismatch)" in err, err


def test_wrong_artifact(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "custom-issuer-artifact"),
        "--bundle",
        str(GH / "reusable-workflow-attestation.sigstore.json"),
        "--repo",
        "malancas/attest-demo",
        "--signer-workflow",
        ATTEST_WORKFLOW,
    )
    assert code == 1 and "(subject-mismatch)" in err, err


def test_custom_issuer(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "custom-issuer-artifact"),
        "--bundle",
        str(GH / "custom-issuer.sigstore.json"),
        "--owner",
        "too-legit",
        "--cert-oidc-issuer",
        "https://token.actions.githubusercontent.com/hammer-time",
    )
    assert code == 0, err


def test_custom_issuer_needs_its_issuer(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "custom-issuer-artifact"),
        "--bundle",
        str(GH / "custom-issuer.sigstore.json"),
        "--owner",
        "too-legit",
    )
    assert code == 1 and "(issuer-mismatch)" in err, err


def test_invalid_signature(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "reusable-workflow-artifact"),
        "--bundle",
        str(GH / "sigstoreBundle-invalid-signature.json"),
        "--owner",
        "sigstore",
    )
    assert code == 1, err
    assert "(bad-signature)" in err or "(tlog-invalid)" in err, err


def test_private_instance_is_a_precise_deny(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(
        capsys,
        str(GH / "github_provenance_demo-0.0.12-py3-none-any.whl"),
        "--bundle",
        str(GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl"),
        "--owner",
        "actions",
    )
    assert code == 1, err
    assert "RFC 3161" in err and "trust root" in err, err
    assert "Traceback" not in err


def test_sha512_subject(capsys: pytest.CaptureFixture[str]) -> None:
    """sigstore-js's npm provenance names its tarball by SHA-512 (``--digest-alg sha512``)."""
    path = GH / "sigstore-js-2.1.0.tgz"
    code, err = _run(
        capsys,
        str(path),
        "--bundle",
        str(GH / "sigstore-js-2.1.0-bundle.json"),
        "--repo",
        "sigstore/sigstore-js",
        "--digest-alg",
        "sha512",
    )
    assert code == 0, err
    code, err = _run(
        capsys,
        str(path),
        "--bundle",
        str(GH / "sigstore-js-2.1.0-bundle.json"),
        "--repo",
        "sigstore/sigstore-js",
    )
    assert code == 1 and "(subject-mismatch)" in err, err


def test_vectors_readme_mentions_every_bundle() -> None:
    readme = (VECTORS / "README.md").read_text()
    for name in (
        "reusable-workflow-attestation.sigstore.json",
        "custom-issuer.sigstore.json",
        "sigstoreBundle-invalid-signature.json",
    ):
        assert name in readme
    assert Path(GH / "trusted_root.json").is_file()
