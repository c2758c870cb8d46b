"""SLSA provenance checks (pure): builder, source, refs, buildTypes, certificate cross-check."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from gate.evidence.identity import CertificateIdentity
from gate.evidence.slsa import (
    TRUSTED_GITHUB_BUILDERS,
    builder_id_matches,
    is_release_tag,
    parse_provenance,
    semver_canonical,
    verify_provenance,
    versioned_tag_matches,
)
from gate.evidence.statement import AttestationError, Statement, parse_statement
from gate.policy.model import SlsaRequirements
from testkit import attestations as a

DIGEST = "sha256:" + "ab" * 32
PT = "application/vnd.in-toto+json"
BUILD = a.GitHubBuild()  # acme/app, refs/tags/v1.4.0, release.yml
WORKFLOW = BUILD.workflow_identity
GENERATOR = a.SLSA_GENERIC_GENERATOR + "@refs/tags/v2.1.0"


def _st(build: a.GitHubBuild = BUILD, version: str = "v1") -> Statement:
    stmt = a.provenance_statement([a.subject("img", DIGEST)], build, slsa_version=version)  # type: ignore[arg-type]
    return parse_statement(PT, a.statement_bytes(stmt))


def _req(**kw: Any) -> SlsaRequirements:
    return SlsaRequirements.model_validate(kw)


def _identity(
    san: str = WORKFLOW,
    *,
    build: a.GitHubBuild = BUILD,
    signer: str | None = None,
    **claims: str,
) -> CertificateIdentity:
    base = {
        "buildSignerURI": signer or san,
        "buildConfigURI": build.workflow_identity,
        "sourceRepositoryURI": build.repository_uri,
        "sourceRepositoryRef": build.ref,
        "sourceRepositoryDigest": build.commit,
        "runnerEnvironment": "github-hosted",
    }
    base.update(claims)
    return CertificateIdentity((san,), a.GITHUB_ACTIONS_ISSUER, base)


def _reason(
    st: Statement, req: SlsaRequirements, ident: CertificateIdentity | None = None, **kw: Any
) -> str:
    with pytest.raises(AttestationError) as e:
        verify_provenance(st, req, ident, **kw)
    return e.value.reason


# --- genuine ----------------------------------------------------------------------------------


def test_v1_github_attestation_all_checks() -> None:
    req = _req(
        builderId="https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*",
        sourceUri=BUILD.git_uri,
        sourceTag="v1.4.0",
        buildTypes=[a.GITHUB_WORKFLOW_BUILD_TYPE, a.GITHUB_WORKFLOW_BUILD_TYPE_OLD],
    )
    prov = verify_provenance(_st(), req, _identity())
    assert prov.builder_identity == WORKFLOW
    verify_provenance(_st(), req)  # key-signed: the predicate's builder is compared


def test_v02_generator_keyless() -> None:
    build = replace(BUILD, builder_id=GENERATOR)
    req = _req(
        builderId=a.SLSA_GENERIC_GENERATOR, sourceUri="github.com/acme/app", sourceVersionedTag="v1"
    )
    verify_provenance(_st(build, "v0.2"), req, _identity(GENERATOR, build=build))


def test_old_github_build_type_accepted_when_listed() -> None:
    build = replace(BUILD, build_type=a.GITHUB_WORKFLOW_BUILD_TYPE_OLD)
    req = _req(buildTypes=[a.GITHUB_WORKFLOW_BUILD_TYPE, a.GITHUB_WORKFLOW_BUILD_TYPE_OLD])
    verify_provenance(_st(build), req)


# --- builder ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "actual", "ok"),
    [
        ("https://x/w.yml", "https://x/w.yml@refs/tags/v2.1.0", True),
        ("https://x/w.yml@v2.1.0", "https://x/w.yml@refs/tags/v2.1.0", True),
        ("https://x/w.yml@refs/tags/v2.1.0", "https://x/w.yml@refs/tags/v2.1.0", True),
        ("https://x/w.yml@refs/tags/v2.1.0", "https://x/w.yml@v2.1.0", True),
        ("https://x/w.yml@v2.1.1", "https://x/w.yml@refs/tags/v2.1.0", False),
        ("https://x/w.yml@refs/tags/*", "https://x/w.yml@refs/tags/v2.1.0", True),
        ("https://x/w.yml@refs/tags/*", "https://x/w.yml@refs/heads/main", False),
        ("https://x/*.yml", "https://x/w.yml@refs/heads/main", True),
        ("https://x/w.yml", "https://x/w.yml.evil@refs/tags/v1.0.0", False),
        ("https://x/w.yml", "https://x/w.yml@a@b", False),
        ("https://x/w.yml@v1.0.0", "https://x/w.yml", False),
    ],
)
def test_builder_id_matching(pattern: str, actual: str, ok: bool) -> None:
    assert builder_id_matches(pattern, actual) is ok


def test_untrusted_builder_keyless() -> None:
    # The certificate's workflow is not the builder the policy trusts.
    req = _req(builderId="https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*")
    ident = _identity("https://github.com/acme/app/.github/workflows/ci.yml@refs/heads/main")
    assert _reason(_st(), req, ident) == "untrusted-builder"


def test_untrusted_builder_not_in_trusted_list() -> None:
    assert _reason(_st(), _req(), _identity(), trusted_builders=TRUSTED_GITHUB_BUILDERS) == (
        "untrusted-builder"
    )


def test_trusted_builder_must_be_at_release_tag() -> None:
    build = replace(BUILD, builder_id=a.SLSA_GENERIC_GENERATOR + "@refs/heads/main")
    ident = _identity(a.SLSA_GENERIC_GENERATOR + "@refs/heads/main", build=build)
    st = _st(build, "v0.2")
    assert _reason(st, _req(), ident, trusted_builders=TRUSTED_GITHUB_BUILDERS) == (
        "untrusted-builder"
    )


def test_builder_mismatch_keyless() -> None:
    # A trusted builder's certificate over provenance that names another builder.
    build = replace(BUILD, builder_id="https://evil.example/builder@v1")
    ident = _identity(GENERATOR, build=build)
    assert _reason(_st(build, "v0.2"), _req(builderId=a.SLSA_GENERIC_GENERATOR), ident) == (
        "builder-mismatch"
    )


def test_builder_mismatch_key_signed() -> None:
    req = _req(builderId="https://github.com/acme/app/.github/workflows/release.yml")
    build = replace(BUILD, workflow_path=".github/workflows/other.yml")
    assert _reason(_st(build), req) == "builder-mismatch"


def test_build_type_mismatch() -> None:
    build = replace(BUILD, build_type="https://example.com/evil-build/v1")
    assert _reason(_st(build), _req(buildTypes=[a.GITHUB_WORKFLOW_BUILD_TYPE])) == (
        "build-type-mismatch"
    )


# --- source -----------------------------------------------------------------------------------


def test_source_mismatch_material() -> None:
    build = replace(BUILD, source_uri="git+https://github.com/evil/app@refs/tags/v1.4.0")
    assert _reason(_st(build), _req(sourceUri=BUILD.git_uri)) == "source-mismatch"


def test_source_mismatch_trigger() -> None:
    build = replace(BUILD, trigger_repository="https://github.com/evil/app")
    assert _reason(_st(build), _req(sourceUri=BUILD.git_uri)) == "source-mismatch"
    assert _reason(_st(build, "v0.2"), _req(sourceUri=BUILD.git_uri)) == "source-mismatch"


def test_source_trigger_and_material_refs_differ() -> None:
    build = replace(BUILD, source_uri=f"{BUILD.git_uri}@refs/heads/main")
    assert _reason(_st(build), _req(sourceUri=BUILD.git_uri)) == "source-mismatch"


def test_source_is_not_a_prefix_match() -> None:
    assert _reason(_st(), _req(sourceUri="git+https://github.com/acme/ap")) == "source-mismatch"


def test_source_without_ref_is_malformed() -> None:
    build = replace(BUILD, source_uri=BUILD.git_uri)
    assert _reason(_st(build), _req(sourceUri=BUILD.git_uri)) == "malformed-statement"


def test_source_normalisation() -> None:
    for uri in ("github.com/acme/app", "https://github.com/acme/app", BUILD.git_uri):
        verify_provenance(_st(), _req(sourceUri=uri))


# --- refs -------------------------------------------------------------------------------------


BRANCH_BUILD = replace(BUILD, ref="refs/heads/main", event_name="workflow_dispatch")


def test_branch_ok_and_mismatch() -> None:
    verify_provenance(_st(BRANCH_BUILD), _req(sourceBranch="main"))
    verify_provenance(_st(BRANCH_BUILD, "v0.2"), _req(sourceBranch="main"))
    assert _reason(_st(BRANCH_BUILD), _req(sourceBranch="master")) == "branch-mismatch"


def test_tag_asked_on_branch_build_is_invalid_ref() -> None:
    assert _reason(_st(BRANCH_BUILD), _req(sourceTag="v1.4.0")) == "invalid-ref"
    assert _reason(_st(BRANCH_BUILD, "v0.2"), _req(sourceVersionedTag="v1")) == "invalid-ref"


def test_branch_asked_on_tag_build_without_base_ref_is_invalid_ref() -> None:
    assert _reason(_st(), _req(sourceBranch="main")) == "invalid-ref"


def test_tag_mismatch() -> None:
    assert _reason(_st(), _req(sourceTag="v1.4.1")) == "tag-mismatch"
    assert _reason(_st(), _req(sourceTag="v1")) == "tag-mismatch"  # exact, not versioned


def test_source_ref() -> None:
    verify_provenance(_st(), _req(sourceRef="refs/tags/v1.*"))
    assert _reason(_st(), _req(sourceRef="refs/tags/v2.*")) == "tag-mismatch"
    assert _reason(_st(), _req(sourceRef="refs/heads/main")) == "branch-mismatch"


@pytest.mark.parametrize(
    ("tag", "expected", "ok"),
    [
        ("v13.0.30", "v13", True),
        ("v13.0.30", "v13.0", True),
        ("v13.0.30", "v13.0.30", True),
        ("v13.0.30", "v13.1", False),
        ("v13.0.30", "v13.0.31", False),
        ("v13.0.30", "v2", False),
        ("v14", "v14.0", True),
        ("v14", "v14.1", False),
        ("v14.2", "v14.2", True),
        ("v14.2", "v14.2.1", False),
        ("v14.2", "v14", True),
        ("v1.2.3+build", "v1.2.3", True),
        ("v1.2.3", "v1.2.3+meta", True),
        ("v1.2.3-rc.1", "v1.2", True),
        ("release-1", "v1", False),
        ("v1.2.3", "1.2.3", False),
    ],
)
def test_versioned_tag(tag: str, expected: str, ok: bool) -> None:
    assert versioned_tag_matches(tag, expected)[0] is ok


def test_versioned_tag_mismatch_reason() -> None:
    assert _reason(_st(), _req(sourceVersionedTag="v2")) == "versioned-tag-mismatch"
    verify_provenance(_st(), _req(sourceVersionedTag="v1.4"))


def test_semver_helpers() -> None:
    assert semver_canonical("v1") == "v1.0.0"
    assert semver_canonical("v1.2.3+x") == "v1.2.3"
    assert semver_canonical("v01") == ""
    assert is_release_tag("refs/tags/v2.1.0")
    assert not is_release_tag("refs/tags/v2.1")
    assert not is_release_tag("refs/tags/v2.1.0-rc.1")
    assert not is_release_tag("refs/heads/v2.1.0")


# --- certificate cross-check ------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"sourceRepositoryURI": "https://github.com/evil/app"},
        {"sourceRepositoryRef": "refs/heads/main"},
        {"sourceRepositoryDigest": "f" * 40},
        {"buildConfigURI": "https://github.com/acme/app/.github/workflows/x.yml@refs/tags/v1.4.0"},
        {"runnerEnvironment": "self-hosted"},
    ],
    ids=["repository", "ref", "commit", "workflow", "runner"],
)
def test_certificate_predicate_mismatch(claims: dict[str, str]) -> None:
    assert _reason(_st(), _req(), _identity(**claims)) == "certificate-predicate-mismatch"


def test_certificate_without_github_claims_skips_cross_check() -> None:
    ident = CertificateIdentity((WORKFLOW,), "https://issuer.example", {})
    verify_provenance(_st(), _req(), ident)


# --- malformed --------------------------------------------------------------------------------


def test_not_provenance() -> None:
    st = parse_statement(
        PT, a.statement_bytes(a.vsa_statement([a.subject("img", DIGEST)], resource_uri="x"))
    )
    assert _reason(st, _req()) == "predicate-type-mismatch"


def test_missing_builder_is_malformed() -> None:
    stmt = a.provenance_statement([a.subject("img", DIGEST)])
    del stmt["predicate"]["runDetails"]["builder"]
    with pytest.raises(AttestationError) as e:
        parse_provenance(parse_statement(PT, a.statement_bytes(stmt)))
    assert e.value.reason == "malformed-statement"
