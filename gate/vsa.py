"""SLSA Verification Summary Attestations (``https://slsa.dev/verification_summary/v1``).

Accepting a VSA as evidence (pure, on a statement whose signature and subject
already held): the verifier is the one the policy trusts (anchored glob over
``verifier.id``), the result is ``PASSED``, the resource and policy URIs
(and the policy digest) match where the policy names them, and ``verifiedLevels`` reaches the
required level on the same track (``SLSA_BUILD_LEVEL_3`` satisfies a
requirement of ``SLSA_BUILD_LEVEL_2``).

Emitting the gate's own VSA for each decision: :mod:`gate.vsa_emit`.
"""

from __future__ import annotations

import re

from gate.evidence.statement import VSA_V1, AttestationError, Statement
from gate.policy.glob import glob_match
from gate.policy.model import VsaRequirements

_LEVEL = re.compile(r"(SLSA_[A-Z]+)_LEVEL_([0-9]+)")


def _fail(reason: str, message: str, **kw: str) -> AttestationError:
    return AttestationError(message, reason=reason, **kw)


def check_vsa(statement: Statement, req: VsaRequirements) -> None:
    """Raise unless the VSA says what ``req`` requires."""
    if statement.predicate_type != VSA_V1:
        raise _fail("predicate-type-mismatch", "not a VSA", found=statement.predicate_type)
    p = statement.predicate
    verifier = p.get("verifier")
    vid = verifier.get("id") if isinstance(verifier, dict) else None
    if not isinstance(vid, str) or not glob_match(req.verifier_id, vid):
        raise _fail(
            "vsa-verifier-mismatch",
            "the VSA was issued by a verifier the policy does not trust",
            found=repr(vid),
            expected=req.verifier_id,
        )
    if p.get("verificationResult") != "PASSED":
        raise _fail(
            "vsa-failed",
            "the VSA records a failed verification",
            found=repr(p.get("verificationResult")),
        )
    resource = p.get("resourceUri")
    if req.resource_uri is not None and not (
        isinstance(resource, str) and glob_match(req.resource_uri, resource)
    ):
        raise _fail(
            "vsa-resource-mismatch",
            "the VSA is about another resource",
            found=repr(resource),
            expected=req.resource_uri,
        )
    policy = p.get("policy")
    puri = policy.get("uri") if isinstance(policy, dict) else None
    if req.policy_uri is not None and not (
        isinstance(puri, str) and glob_match(req.policy_uri, puri)
    ):
        raise _fail(
            "vsa-policy-mismatch",
            "the VSA was made under another policy",
            found=repr(puri),
            expected=req.policy_uri,
        )
    if req.policy_digest is not None:
        # slsa.dev/spec/v1.0/verification_summary: policy is a ResourceDescriptor;
        # its digest set names the exact policy bytes the verifier evaluated.
        algorithm, _, hex_value = req.policy_digest.partition(":")
        pdigest = policy.get("digest") if isinstance(policy, dict) else None
        got = pdigest.get(algorithm) if isinstance(pdigest, dict) else None
        if not isinstance(got, str) or got.lower() != hex_value:
            raise _fail(
                "vsa-policy-mismatch",
                "the VSA was made under another policy (digest)",
                found=f"{algorithm}:{got}" if isinstance(got, str) else repr(pdigest),
                expected=req.policy_digest,
            )
    if req.min_level is not None:
        want = _LEVEL.fullmatch(req.min_level)
        if want is None:  # pragma: no cover - validated by the policy model
            raise TypeError(req.min_level)
        levels = p.get("verifiedLevels")
        got = [
            m
            for lv in (levels if isinstance(levels, list) else [])
            if isinstance(lv, str) and (m := _LEVEL.fullmatch(lv)) is not None
        ]
        if not any(
            m.group(1) == want.group(1) and int(m.group(2)) >= int(want.group(2)) for m in got
        ):
            raise _fail(
                "vsa-level-too-low",
                "the VSA does not verify the required SLSA level",
                found=repr(levels),
                expected=f"{req.min_level} or higher",
            )
