"""VSA acceptance: verifier, result, resource, policy, level (each failure its reason)."""

from __future__ import annotations

from typing import Any

import pytest

from gate.evidence.statement import AttestationError, parse_statement
from gate.policy.model import VsaRequirements
from gate.vsa import check_vsa
from testkit import attestations as a

D = "sha256:" + "ab" * 32


def _check(req: dict[str, Any], **kw: Any) -> None:
    stmt = a.vsa_statement([a.subject("img", D)], resource_uri=kw.pop("resource", "img@" + D), **kw)
    check_vsa(
        parse_statement("application/vnd.in-toto+json", a.statement_bytes(stmt)),
        VsaRequirements.model_validate(req),
    )


def test_accepted() -> None:
    _check(
        {
            "verifierId": "https://gitops-gate.dev/*",
            "minLevel": "SLSA_BUILD_LEVEL_2",
            "resourceUri": "img@*",
            "policyUri": "https://gitops-gate.dev/policy/**",
        }
    )


@pytest.mark.parametrize(
    ("req", "kw", "reason"),
    [
        ({"verifierId": "https://other/*"}, {}, "vsa-verifier-mismatch"),
        ({"verifierId": "**"}, {"result": "FAILED"}, "vsa-failed"),
        ({"verifierId": "**", "resourceUri": "other@*"}, {}, "vsa-resource-mismatch"),
        ({"verifierId": "**", "policyUri": "https://x/*"}, {}, "vsa-policy-mismatch"),
        (
            {"verifierId": "**", "minLevel": "SLSA_BUILD_LEVEL_3"},
            {"verified_levels": ["SLSA_BUILD_LEVEL_2"]},
            "vsa-level-too-low",
        ),
        (
            {"verifierId": "**", "minLevel": "SLSA_BUILD_LEVEL_1"},
            {"verified_levels": ["SLSA_SOURCE_LEVEL_3"]},
            "vsa-level-too-low",
        ),
    ],
)
def test_rejected(req: dict[str, Any], kw: dict[str, Any], reason: str) -> None:
    with pytest.raises(AttestationError) as e:
        _check(req, **kw)
    assert e.value.reason == reason


def test_policy_digest() -> None:
    digest = {"sha256": "9f" * 32}
    _check({"verifierId": "**", "policyDigest": "sha256:" + "9f" * 32}, policy_digest=digest)
    for other in (None, {"sha256": "00" * 32}, {"sha512": "9f" * 32}):
        with pytest.raises(AttestationError) as e:
            _check({"verifierId": "**", "policyDigest": "sha256:" + "9f" * 32}, policy_digest=other)
        assert e.value.reason == "vsa-policy-mismatch"
