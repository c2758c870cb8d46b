"""testkit.attestations: shapes of statements and predicates, signatures, in-toto chains."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from in_toto.verifylib import in_toto_verify

from gate.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    KeyKind,
    Signer,
    generate_key_pair,
    pae,
    verify_signature,
)
from testkit import attestations as att

DIGEST = "sha256:" + "ab" * 32


def test_statement_v1_and_v01() -> None:
    s = att.statement([att.subject("app", DIGEST)], "https://example.com/p", {"a": 1})
    assert s == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://example.com/p",
        "predicate": {"a": 1},
    }
    old = att.statement([att.subject("app", {"sha256": "cd"})], "p", {}, version="v0.1")
    assert old["_type"] == "https://in-toto.io/Statement/v0.1"
    with pytest.raises(ValueError):
        att.subject("app", "nocolon")


def test_slsa_v1_github_shape() -> None:
    build = att.GitHubBuild(repository="org/repo", ref="refs/tags/v1.2.3")
    pred = att.slsa_provenance_v1(build)
    bd = pred["buildDefinition"]
    assert bd["buildType"] == "https://actions.github.io/buildtypes/workflow/v1"
    assert bd["externalParameters"]["workflow"] == {
        "ref": "refs/tags/v1.2.3",
        "repository": "https://github.com/org/repo",
        "path": ".github/workflows/release.yml",
    }
    assert (
        bd["resolvedDependencies"][0]["uri"] == "git+https://github.com/org/repo@refs/tags/v1.2.3"
    )
    assert bd["resolvedDependencies"][0]["digest"] == {"gitCommit": build.commit}
    assert pred["runDetails"]["builder"]["id"] == att.GITHUB_HOSTED_RUNNER
    assert build.git_uri == "git+https://github.com/org/repo"
    assert build.workflow_identity == (
        "https://github.com/org/repo/.github/workflows/release.yml@refs/tags/v1.2.3"
    )
    # Knobs a verifier test needs.
    odd = replace(
        build,
        builder_id="https://github.com/evil/x/.github/workflows/b.yml@refs/heads/main",
        build_type=att.GITHUB_WORKFLOW_BUILD_TYPE_OLD,
        source_uri="git+https://github.com/evil/repo@refs/tags/v1.2.3",
        trigger_repository="https://github.com/evil/repo",
    )
    pred = att.slsa_provenance_v1(odd)
    assert pred["buildDefinition"]["buildType"] == (
        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
    )
    assert pred["runDetails"]["builder"]["id"].startswith("https://github.com/evil/x/")
    assert pred["buildDefinition"]["resolvedDependencies"][0]["uri"].startswith(
        "git+https://github.com/evil/repo"
    )
    assert pred["buildDefinition"]["externalParameters"]["workflow"]["repository"] == (
        "https://github.com/evil/repo"
    )


def test_slsa_v02_generator_shape() -> None:
    build = att.GitHubBuild(repository="org/repo", ref="refs/heads/main")
    stmt = att.provenance_statement([att.subject("bin", DIGEST)], build, slsa_version="v0.2")
    assert stmt["_type"] == att.STATEMENT_V01
    assert stmt["predicateType"] == "https://slsa.dev/provenance/v0.2"
    pred = stmt["predicate"]
    assert pred["builder"]["id"].startswith(att.SLSA_GENERIC_GENERATOR + "@refs/tags/v")
    assert pred["buildType"] == att.SLSA_GENERIC_BUILD_TYPE_V02
    assert (
        pred["invocation"]["configSource"]["uri"]
        == "git+https://github.com/org/repo@refs/heads/main"
    )
    assert pred["invocation"]["environment"]["github_ref_type"] == "branch"
    assert pred["materials"][0] == {
        "uri": "git+https://github.com/org/repo@refs/heads/main",
        "digest": {"sha1": build.commit},
    }
    v1 = att.provenance_statement([att.subject("bin", DIGEST)], build)
    assert v1["_type"] == att.STATEMENT_V1 and v1["predicateType"] == att.SLSA_PROVENANCE_V1


def test_vsa() -> None:
    stmt = att.vsa_statement(
        [att.subject("registry.example.com/app", DIGEST)],
        resource_uri="registry.example.com/app@" + DIGEST,
        policy_digest={"sha256": "00" * 32},
        input_attestations=[{"uri": "oci://x", "digest": {"sha256": "11" * 32}}],
        result="FAILED",
    )
    pred = stmt["predicate"]
    assert stmt["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert pred["verificationResult"] == "FAILED"
    assert pred["policy"]["digest"] == {"sha256": "00" * 32}
    assert pred["timeVerified"].endswith("Z")
    assert pred["verifier"]["id"] and pred["verifiedLevels"] == ["SLSA_BUILD_LEVEL_3"]


@pytest.mark.parametrize("kind", list(KeyKind))
def test_sign_statement_with_key(kind: KeyKind) -> None:
    signer = Signer(generate_key_pair(kind, rsa_bits=2048).private_key)
    stmt = att.provenance_statement([att.subject("app", DIGEST)])
    env = att.sign_statement(stmt, signer)
    assert env.payload_type == IN_TOTO_PAYLOAD_TYPE
    assert json.loads(env.payload) == stmt
    assert env.signatures[0].keyid == ""
    verify_signature(signer.public_key, env.signatures[0].sig, pae(env.payload_type, env.payload))
    doc = json.loads(env.to_json())
    assert base64.b64decode(doc["payload"]) == env.payload


def test_securesystemslib_verifies_signed_statement() -> None:
    from securesystemslib.dsse import Envelope as SslibEnvelope

    pair = generate_key_pair()
    key = att.sslib_key(pair)
    env = att.sign_statement(
        att.vsa_statement([att.subject("a", DIGEST)], resource_uri="a"),
        Signer(pair.private_key),
        keyid=key.keyid,
    )
    assert key.keyid in SslibEnvelope.from_dict(json.loads(env.to_json())).verify([key], 1)


# --- in-toto layouts ------------------------------------------------------------


@pytest.fixture
def chdir(tmp_path: Path) -> Iterator[Path]:
    # in_toto_verify runs inspections and records artifacts in the cwd.
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "owner": generate_key_pair(KeyKind.ED25519),
        "coder": generate_key_pair(KeyKind.ECDSA_P256),
        "packager": generate_key_pair(KeyKind.RSA, rsa_bits=2048),
    }


def test_layout_without_inspections_verifies(chdir: Path, keys: dict) -> None:
    chain = att.make_in_toto_chain(chdir, **keys)
    assert not chain.layout.signed.inspect
    summary = in_toto_verify(chain.layout, chain.layout_key_dict, link_dir_path=str(chdir))
    assert "foo.tar.gz" in summary.products  # the summary link carries the final product
    # The files on disk are what was verified: reload them.
    from in_toto.models.metadata import Metablock

    reloaded = Metablock.load(str(chain.layout_path))
    in_toto_verify(reloaded, chain.layout_key_dict, link_dir_path=str(chdir))


def test_layout_with_inspection_runs_it(chdir: Path, keys: dict) -> None:
    chain = att.make_in_toto_chain(chdir, **keys, inspections=True)
    assert [i.name for i in chain.layout.signed.inspect] == ["untar"]
    in_toto_verify(chain.layout, chain.layout_key_dict, link_dir_path=str(chdir))
    assert (chdir / "foo.py").read_bytes() == b"print('hello')\n"  # the inspection ran


def test_layout_with_inspection_catches_tampered_product(chdir: Path, keys: dict) -> None:
    chain = att.make_in_toto_chain(chdir, **keys, inspections=True, tamper_product=True)
    with pytest.raises(Exception):  # noqa: B017 - rule or return-value error, both deny
        in_toto_verify(chain.layout, chain.layout_key_dict, link_dir_path=str(chdir))


def test_layout_wrong_owner_key_fails(chdir: Path, keys: dict) -> None:
    from in_toto.exceptions import SignatureVerificationError

    chain = att.make_in_toto_chain(chdir, **keys)
    other = att.in_toto_key_dict(generate_key_pair(KeyKind.ED25519))
    with pytest.raises(SignatureVerificationError):
        in_toto_verify(chain.layout, {other["keyid"]: other}, link_dir_path=str(chdir))


def test_link_by_wrong_functionary_fails(chdir: Path, keys: dict) -> None:
    from in_toto.exceptions import ThresholdVerificationError

    chain = att.make_in_toto_chain(chdir, **keys)
    # Re-sign the package link with the coder's key under the packager's file name.
    forged = att.make_link("package", keys["coder"], materials={"foo.py": b"print('hello')\n"})
    forged.dump(str(chain.link_paths["package"]))
    with pytest.raises(ThresholdVerificationError):
        in_toto_verify(chain.layout, chain.layout_key_dict, link_dir_path=str(chdir))


def test_sign_statement_keyless_verifies_with_sigstore(
    sigstore_authority, sigstore_verifier, github_claims
) -> None:
    from sigstore.verify import policy

    from testkit.plugin_sigstore import GITHUB_ISSUER, to_bundle

    build = att.GitHubBuild(repository="acme/app", ref=github_claims.source_repository_ref)
    stmt = att.provenance_statement([att.subject("app", DIGEST)], build)
    bundle = att.sign_statement_keyless(
        stmt,
        sigstore_authority,
        identity=github_claims.identity,
        issuer=GITHUB_ISSUER,
        github=github_claims,
    )
    payload_type, payload = sigstore_verifier.verify_dsse(
        to_bundle(bundle), policy.Identity(identity=github_claims.identity, issuer=GITHUB_ISSUER)
    )
    assert payload_type == IN_TOTO_PAYLOAD_TYPE
    assert json.loads(payload) == stmt
