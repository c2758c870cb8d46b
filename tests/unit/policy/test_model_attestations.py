"""Attestation policy fields: vsa, layout, github options; validation errors name the field."""

from __future__ import annotations

from typing import Any

import pytest

from gate.errors import PolicyError
from tests.unit.helpers import make_policy


def _pub() -> str:
    from gate.signing import generate_key_pair, public_key_pem

    return public_key_pem(generate_key_pair().public_key).decode()


def _spec(att: dict[str, Any], keys: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "keys": keys or {"ci": {"publicKey": _pub()}},
        "images": [{"match": ["r.example/**"], "attestations": [{"signers": ["ci"], **att}]}],
    }


def test_vsa_rule() -> None:
    p = make_policy(
        _spec(
            {
                "predicateType": "https://slsa.dev/verification_summary/v1",
                "vsa": {
                    "verifierId": "https://gitops-gate.dev/*",
                    "minLevel": "SLSA_BUILD_LEVEL_2",
                },
            }
        )
    )
    rule = p.policy.spec.images[0].attestations[0]
    assert rule.vsa is not None and rule.vsa.min_level == "SLSA_BUILD_LEVEL_2"


def test_vsa_needs_vsa_predicate_type() -> None:
    with pytest.raises(PolicyError, match="vsa requirements"):
        make_policy(
            _spec({"predicateType": "https://slsa.dev/provenance/v1", "vsa": {"verifierId": "x"}})
        )


def test_vsa_level_shape() -> None:
    with pytest.raises(PolicyError, match="minLevel"):
        make_policy(
            _spec(
                {
                    "predicateType": "https://slsa.dev/verification_summary/v1",
                    "vsa": {"verifierId": "x", "minLevel": "level 3"},
                }
            )
        )


def test_slsa_needs_provenance_type() -> None:
    with pytest.raises(PolicyError, match="slsa requirements"):
        make_policy(_spec({"predicateType": "https://example.com/x", "slsa": {}}))


def test_layout_rule_and_default_refuses_inspections() -> None:
    p = make_policy(
        _spec(
            {
                "predicateType": "https://in-toto.io/attestation/link/v0.3",
                "layout": {"path": "root.layout", "keys": ["ci"]},
            }
        )
    )
    layout = p.policy.spec.images[0].attestations[0].layout
    assert layout is not None and layout.allow_inspections is False


def test_layout_keys_must_be_public_keys() -> None:
    keys = {"ci": {"publicKey": _pub()}, "gh": {"keyless": {"issuer": "https://i", "subject": "x"}}}
    with pytest.raises(PolicyError, match=r"layout\.keys"):
        make_policy(_spec({"predicateType": "x", "layout": {"path": "l", "keys": ["gh"]}}, keys))
    with pytest.raises(PolicyError, match=r"layout\.keys"):
        make_policy(_spec({"predicateType": "x", "layout": {"path": "l", "keys": ["nope"]}}, keys))


def test_github_options() -> None:
    p = make_policy(
        _spec(
            {
                "predicateType": "https://slsa.dev/provenance/v1",
                "github": {
                    "owner": "acme",
                    "repository": "acme/app",
                    "signerWorkflow": "https://github.com/acme/app/**",
                    "hostedRunnersOnly": True,
                },
            }
        )
    )
    gh = p.policy.spec.images[0].attestations[0].github
    assert gh is not None and gh.hosted_runners_only


def test_unknown_field_is_an_error() -> None:
    with pytest.raises(PolicyError):
        make_policy(
            _spec(
                {
                    "predicateType": "x",
                    "layout": {"path": "l", "keys": ["ci"], "allowInspection": True},
                }
            )
        )


def test_vsa_policy_digest_is_a_sha256() -> None:
    from pydantic import ValidationError

    from gate.policy.model import VsaRequirements

    ok = VsaRequirements.model_validate({"verifierId": "x", "policyDigest": "sha256:" + "a" * 64})
    assert ok.policy_digest == "sha256:" + "a" * 64
    with pytest.raises(ValidationError, match="policyDigest"):
        VsaRequirements.model_validate({"verifierId": "x", "policyDigest": "a" * 64})
