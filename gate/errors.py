"""The exception tree.

One root, two families that must never be confused (as in python-tuf):
``VerificationError`` means the evidence is bad or missing (deny, exit 1);
``EvidenceError`` means the evidence could not be obtained or read (could not
decide, exit 3). Misuse of our own API raises ``RuntimeError``/``TypeError``.
"""

from __future__ import annotations


class GateError(Exception):
    """Root of every error the gate raises on purpose."""

    #: Stable kebab-case reason code, asserted by tests and shown in reports.
    reason: str = "error"
    exit_code: int = 4

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        found: str | None = None,
        expected: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.found = found
        self.expected = expected
        self.hint = hint

    def diagnostics(self) -> str:
        """What was found, what was expected, what to do."""
        lines = [self.message]
        if self.found is not None:
            lines.append(f"  found:    {self.found}")
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.hint is not None:
            lines.append(f"  to fix:   {self.hint}")
        return "\n".join(lines)


# --- usage and policy: exit 2 -------------------------------------------------


class UsageError(GateError):
    reason = "usage"
    exit_code = 2


class PolicyError(GateError):
    reason = "policy-invalid"
    exit_code = 2


# --- the evidence is wrong or missing: deny, exit 1 --------------------------


class VerificationError(GateError):
    reason = "verification-failed"
    exit_code = 1


class SignatureError(VerificationError):
    reason = "bad-signature"


class IdentityError(VerificationError):
    reason = "identity-mismatch"


class DigestMismatchError(VerificationError):
    reason = "digest-mismatch"


class ThresholdError(VerificationError):
    reason = "threshold-not-met"


class MissingEvidenceError(VerificationError):
    reason = "unsigned"


class ManifestError(VerificationError):
    """Rendered manifests that are unsafe to interpret (duplicate keys, alias bombs)."""

    reason = "manifest-invalid"


# --- the evidence could not be obtained or read: could not decide, exit 3 ----


class EvidenceError(GateError):
    reason = "evidence-unavailable"
    exit_code = 3


class FetchError(EvidenceError):
    reason = "registry-unreachable"


class SizeLimitError(EvidenceError):
    reason = "size-limit"


class SourceError(EvidenceError):
    reason = "source-unreadable"


class RenderError(EvidenceError):
    reason = "render-failed"
