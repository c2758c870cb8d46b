"""``gate verify-image`` against the real registry: with a policy, a key, or a keyless identity."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from gate.cli import main
from gate.signing import KeyPair, generate_key_pair
from testkit import cosign, oci
from testkit.registry import Registry
from testkit.sigstore_authority import Authority, GitHubClaims
from tests.unit.helpers import write_policy

pytestmark = pytest.mark.integration

ISSUER = "https://token.actions.githubusercontent.com"
CLAIMS = GitHubClaims.for_workflow()


@pytest.fixture(scope="module")
def key() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
def signed(registry: Registry, repo_name: str, key: KeyPair) -> tuple[str, str]:
    desc = oci.push_image(registry, repo_name, "1.0", seed=uuid.uuid4().hex)
    cosign.sign_image_legacy(registry, repo_name, desc.digest, key=key)
    return registry.ref(repo_name, "1.0"), desc.digest


def test_key_flag_prints_the_pinned_reference(
    registry: Registry, signed: tuple[str, str], key: KeyPair, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    ref, digest = signed
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(key.public_pem())
    code = main(["verify-image", ref, "--key", str(pub), "--unsafe-plain-http", registry.host])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.strip() == f"{ref}@{digest}"


def test_other_key_is_denied(
    registry: Registry, signed: tuple[str, str], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    ref, _ = signed
    pub = tmp_path / "other.pub"
    pub.write_bytes(generate_key_pair().public_pem())
    code = main(
        ["verify-image", ref, "--key", str(pub), "--unsafe-plain-http", registry.host,
         "--format", "json"]
    )  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["decision"] == "deny"
    assert [f["reason"] for f in report["findings"] if f["outcome"] == "fail"] == [
        "untrusted-signer"
    ]


def test_keyless_flags(
    registry: Registry, repo_name: str, sigstore_authority: Authority, capsys
) -> None:  # type: ignore[no-untyped-def]
    desc = oci.push_image(registry, repo_name, "1.0", seed=uuid.uuid4().hex)
    keyless = cosign.Keyless(sigstore_authority, CLAIMS.identity, ISSUER, CLAIMS)
    cosign.sign_image_bundle(registry, repo_name, desc, keyless=keyless)
    ref = registry.ref(repo_name, "1.0")
    base = ["verify-image", ref, "--unsafe-plain-http", registry.host,
            "--trusted-root", str(sigstore_authority.trusted_root_path),
            "--certificate-oidc-issuer", ISSUER]  # fmt: skip
    assert main([*base, "--certificate-identity", CLAIMS.identity]) == 0
    assert capsys.readouterr().out.strip() == f"{ref}@{desc.digest}"
    # The identity is compared exactly: a prefix is not the identity.
    assert main([*base, "--certificate-identity", CLAIMS.identity[:-3]]) == 1
    assert "identity-mismatch" in capsys.readouterr().err


def test_policy_file(
    registry: Registry, signed: tuple[str, str], key: KeyPair, tmp_path: Path
) -> None:
    ref, _ = signed
    policy = write_policy(
        tmp_path / "p.yaml",
        {
            "keys": {"ci": {"publicKey": key.public_pem().decode()}},
            "images": [{"match": [f"{registry.host}/**"], "signatures": {"signers": ["ci"]}}],
            "registries": [{"host": registry.host, "insecure": True}],
        },
    )
    assert main(["verify-image", ref, "--policy", str(policy)]) == 0
    unmatched = f"{registry.host.split(':')[0]}:1/none/app:1.0"
    assert main(["verify-image", unmatched, "--policy", str(policy)]) == 1


def test_usage_errors(signed: tuple[str, str], tmp_path: Path) -> None:
    ref, _ = signed
    assert main(["verify-image", ref]) == 2  # no signer at all
    assert main(["verify-image", ref, "--certificate-identity", "x"]) == 2  # no issuer
