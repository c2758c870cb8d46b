"""Which failure explains a deny best, when several signers or materials all failed.

Content failures (the signature held, what it says is wrong) rank before
signature failures, and specific signature failures before the generic
``untrusted-signer``: "the SET is from another log" helps an operator more than
"nobody we trust signed this".
"""

from __future__ import annotations

#: Most specific first.
REASON_RANK = (
    "untrusted-builder",
    "builder-mismatch",
    "source-mismatch",
    "branch-mismatch",
    "tag-mismatch",
    "versioned-tag-mismatch",
    "invalid-ref",
    "build-type-mismatch",
    "certificate-predicate-mismatch",
    "layout-inspections-refused",
    "layout-invalid",
    "vsa-failed",
    "vsa-verifier-mismatch",
    "vsa-resource-mismatch",
    "vsa-level-too-low",
    "vsa-policy-mismatch",
    "subject-mismatch",
    "predicate-type-mismatch",
    "payload-type-mismatch",
    "malformed-statement",
    "digest-mismatch",
    "certificate-expired",
    "tlog-invalid",
    "sct-invalid",
    "issuer-mismatch",
    "identity-mismatch",
    "bad-signature",
    "untrusted-signer",
)


def rank(reason: str) -> int:
    """Lower is more specific; unknown reasons rank last."""
    return REASON_RANK.index(reason) if reason in REASON_RANK else len(REASON_RANK)
