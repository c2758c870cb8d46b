"""Every validation error of the policy model, with the field path in the message."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gate.errors import PolicyError
from gate.policy import load_policy, parse_policy

PUB = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
SSH = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0vKq8s7Zy6c0K3uYV4hZy1m0t8Sx8p1oW3yJ2d0QqS release"
PGP = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDMEZ...\n-----END PGP PUBLIC KEY BLOCK-----\n"

FULL: dict[str, Any] = {
    "apiVersion": "gitops-gate.dev/v1alpha1",
    "kind": "GatePolicy",
    "metadata": {"name": "production"},
    "spec": {
        "mode": "enforce",
        "keys": {
            "release-team": {"ssh": SSH},
            "ops": {"pgp": PGP},
            "ci": {"publicKey": PUB},
            "gha-release": {
                "keyless": {
                    "issuer": "https://token.actions.githubusercontent.com",
                    "subject": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*",
                }
            },
        },
        "trustRoots": {"sigstore": "/etc/gate/trusted_root.json"},
        "source": {
            "git": {
                "require": "tag",
                "tags": ["v*"],
                "signers": ["release-team", "ops"],
                "threshold": 1,
            }
        },
        "charts": [
            {
                "match": ["https://charts.example.com/**", "oci://registry.example.com/charts/**"],
                "provenance": {"signers": ["ops"]},
                "signatures": {"signers": ["ci"]},
            }
        ],
        "images": [
            {
                "match": ["registry.example.com/acme/**"],
                "signatures": {"signers": ["ci", "gha-release"], "threshold": 1},
                "signatureRepository": "registry.example.com/signatures",
                "attestations": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "signers": ["gha-release"],
                        "slsa": {
                            "builderId": "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/*",
                            "sourceUri": "git+https://github.com/acme/app",
                            "sourceVersionedTag": "v1",
                            "buildTypes": ["https://actions.github.io/buildtypes/workflow/v1"],
                        },
                    }
                ],
            },
            {"match": ["docker.io/library/busybox"], "exempt": "vendor image, reviewed 2026-11"},
        ],
        "imageFields": [
            {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Service",
                "paths": ["spec.template.spec.containers[*].image"],
            }
        ],
        "registries": [
            {
                "host": "registry.example.com",
                "credentials": "/etc/gate/registry-auth.json",
                "insecure": False,
            }
        ],
        "output": {"pinDigests": True, "vsa": {"key": "/etc/gate/vsa.key"}},
    },
}


def _load(doc: dict[str, Any]) -> Any:
    return parse_policy(yaml.safe_dump(doc).encode(), source="policy.yaml")


def _broken(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(FULL)
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is _DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return doc


_DELETE = object()


def test_design_example_is_valid() -> None:
    loaded = _load(FULL)
    spec = loaded.policy.spec
    assert loaded.name == "production"
    assert loaded.digest.startswith("sha256:") and len(loaded.digest) == 71
    assert spec.keys["ci"].kind == "publicKey"
    assert spec.keys["gha-release"].kind == "keyless"
    assert spec.source.git is not None and spec.source.git.require == "tag"
    assert spec.images[0].attestations[0].slsa is not None
    assert spec.images[1].exempt == "vendor image, reviewed 2026-11"
    assert spec.output.pin_digests is True


def test_minimal_policy_imposes_nothing_on_git() -> None:
    loaded = _load({**FULL, "spec": {}})
    assert loaded.policy.spec.source.git is None
    assert loaded.policy.spec.images == []
    assert loaded.policy.spec.mode == "enforce"


@pytest.mark.parametrize(
    ("path", "value", "where", "words"),
    [
        ("spec.treshold", 1, "spec.treshold", "unknown field"),
        ("spec.images.0.signatures.treshold", 1, "spec.images[0].signatures.treshold", "unknown"),
        ("apiVersion", "gitops-gate.dev/v1", "apiVersion", "gitops-gate.dev/v1alpha1"),
        ("kind", "Policy", "kind", "GatePolicy"),
        ("metadata", _DELETE, "metadata", "required"),
        ("spec.mode", "permissive", "spec.mode", "audit"),
        ("spec.images.0.signatures.signers", ["nobody"], "spec", "'nobody', not in spec.keys"),
        ("spec.images.0.signatures.signers", [], "spec.images[0].signatures.signers", "at least 1"),
        ("spec.source.git.signers", [], "spec.source.git.signers", "at least 1"),
        ("spec.images.0.signatures.threshold", 3, "spec.images[0].signatures", "larger than"),
        ("spec.images.0.signatures.threshold", 0, "threshold", "greater than or equal to 1"),
        ("spec.images.0.signatures.signers", ["ci", "ci"], "signatures", "twice"),
        ("spec.keys.ci", {"publicKey": PUB, "ssh": SSH}, "spec.keys.ci", "exactly one kind"),
        ("spec.keys.ci", {}, "spec.keys.ci", "exactly one kind"),
        ("spec.keys.ci", {"publicKey": "not a key"}, "spec.keys.ci", "PEM"),
        ("spec.keys.ci", {"ssh": "ssh-ed25519"}, "spec.keys.ci", "public key line"),
        ("spec.keys.ci", {"pgp": "xyz"}, "spec.keys.ci", "ASCII-armored"),
        ("spec.keys.ci", {"keyless": {"issuer": "https://x"}}, "keyless", "exactly one of"),
        (
            "spec.keys.ci",
            {"keyless": {"issuer": "https://x", "subjectRegExp": "("}},
            "keyless",
            "regular expression",
        ),
        ("spec.keys.ci", {"x509": "..."}, "spec.keys.ci.x509", "unknown field"),
        ("spec.images.1", {"match": ["docker.io/x"]}, "spec.images[1]", "must require"),
        (
            "spec.images.1",
            {"match": ["x"], "exempt": "r", "signatures": {"signers": ["ci"]}},
            "spec.images[1]",
            "not both",
        ),
        ("spec.images.1.match", [], "spec.images[1].match", "at least 1"),
        ("spec.charts.0", {"match": ["x"]}, "spec.charts[0]", "must require"),
        (
            "spec.images.0.attestations.0.slsa.sourceBranch",
            "main",
            "slsa",
            "at most one of",
        ),
        ("spec.images.0.attestations.0.predicateType", _DELETE, "predicateType", "required"),
        ("spec.registries", [{"host": "a"}, {"host": "a"}], "spec", "host twice"),
        ("spec.source.git.require", "signed", "spec.source.git.require", "tag-and-commit"),
        ("spec.output.pinDigest", False, "spec.output.pinDigest", "unknown field"),
    ],
)
def test_invalid(path: str, value: Any, where: str, words: str) -> None:
    with pytest.raises(PolicyError) as e:
        _load(_broken(path, value))
    msg = e.value.diagnostics()
    assert e.value.exit_code == 2
    assert "policy.yaml" in msg
    assert where in msg, msg
    assert words in msg, msg


def test_snake_case_spelling_is_not_accepted() -> None:
    # Only the documented spelling: `public_key` would be an unknown field.
    with pytest.raises(PolicyError, match="unknown field"):
        _load(_broken("spec.keys.ci", {"public_key": PUB}))


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "absent.yaml")
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump(FULL) + "---\n" + yaml.safe_dump(FULL))
    with pytest.raises(PolicyError, match="exactly one YAML document"):
        load_policy(two)
    dup = tmp_path / "dup.yaml"
    dup.write_text("apiVersion: a\napiVersion: b\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(dup)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy(big)


def test_digest_is_sha256_of_the_bytes(tmp_path: Path) -> None:
    import hashlib

    p = tmp_path / "p.yaml"
    data = yaml.safe_dump(FULL).encode()
    p.write_bytes(data)
    assert load_policy(p).digest == "sha256:" + hashlib.sha256(data).hexdigest()
    p.write_bytes(data + b"\n# a comment changes the digest\n")
    assert load_policy(p).digest != "sha256:" + hashlib.sha256(data).hexdigest()


def test_image_field_paths_are_validated() -> None:
    with pytest.raises(PolicyError, match=r"spec\.imageFields\[0\]\.paths"):
        _load(_broken("spec.imageFields.0.paths", ["spec..image"]))
