"""Findings, the decision, and the report in JSON and text (DESIGN "Report").

``reason`` is a stable kebab-case code that tests and operators rely on;
``detail`` is for people: what was found, what was expected, what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Outcome = Literal["pass", "fail", "exempt", "warn"]
Decision = Literal["allow", "deny", "error"]
# Why a failure failed, which decides the exit code (DESIGN "Exit codes").
Severity = Literal["deny", "undecided", "internal"]

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_USAGE = 2
EXIT_UNDECIDED = 3
EXIT_INTERNAL = 4


@dataclass(frozen=True)
class Finding:
    """One check on one subject."""

    check: str  # e.g. "git.tag-signature", "image.signature"
    subject: str  # e.g. the tag name or the image reference
    outcome: Outcome
    reason: str  # stable kebab-case code
    detail: str = ""
    severity: Severity = "deny"  # meaningful for fail (and audit warns)

    def to_json(self) -> dict[str, str]:
        return {
            "check": self.check,
            "subject": self.subject,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ImageResult:
    ref: str
    digest: str | None


@dataclass(frozen=True)
class InputAttestation:
    """A signature or attestation the gate verified, for the VSA's ``inputAttestations``.

    ``digest`` (``sha256:<hex>``) is over the exact bytes verified (the OCI blob:
    a simple-signing payload, a DSSE envelope or a Sigstore bundle), so a
    reader can fetch ``uri`` and check it is the same material.
    """

    uri: str
    digest: str


@dataclass
class Report:
    """Everything one run decided, in the DESIGN report shape."""

    policy_name: str
    policy_digest: str
    source_path: str
    revision: str | None
    repo: str | None
    mode: Literal["enforce", "audit"] = "enforce"
    findings: list[Finding] = field(default_factory=list)
    images: list[ImageResult] = field(default_factory=list)
    verified_at: str = ""
    total_ms: float = 0.0
    #: Every signature / attestation that verified (VSA ``inputAttestations``).
    inputs: list[InputAttestation] = field(default_factory=list)
    #: Where this decision's signed VSA went (``gate.vsa_emit``); absent when none was asked for.
    vsa: dict[str, str] | None = None

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def add_input(self, item: InputAttestation) -> None:
        if item not in self.inputs:
            self.inputs.append(item)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.outcome == "fail"]

    @property
    def exit_code(self) -> int:
        """Internal errors first (a bug is never an allow), then deny, then undecided."""
        severities = {f.severity for f in self.failures}
        if "internal" in severities:
            return EXIT_INTERNAL
        if "deny" in severities:
            return EXIT_DENY
        if "undecided" in severities:
            return EXIT_UNDECIDED
        return EXIT_ALLOW

    @property
    def decision(self) -> Decision:
        code = self.exit_code
        if code == EXIT_ALLOW:
            return "allow"
        return "deny" if code == EXIT_DENY else "error"

    def apply_audit_mode(self) -> None:
        """Audit: every verification failure becomes a warning and the run allows.

        Internal errors stay failures: a bug is never turned into an allow, and
        neither is a render that produced nothing to hand over.
        """
        self.mode = "audit"
        self.findings = [
            replace(f, outcome="warn")
            if f.outcome == "fail" and f.severity != "internal" and f.check != "render"
            else f
            for f in self.findings
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "mode": self.mode,
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "source": {"path": self.source_path, "revision": self.revision, "repo": self.repo},
            "findings": [f.to_json() for f in self.findings],
            "images": [{"ref": i.ref, "digest": i.digest} for i in self.images],
            "verifiedAt": self.verified_at,
            "timing": {"total_ms": round(self.total_ms, 1)},
        } | ({"vsa": dict(self.vsa)} if self.vsa is not None else {})

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n"

    def render_text(self, *, verbose: bool = False) -> str:
        """A short, readable summary: every failure with what to do; passes only if verbose."""
        mark = {"pass": "ok  ", "fail": "FAIL", "exempt": "EXEM", "warn": "WARN"}
        head = {
            "allow": "ALLOW",
            "deny": "DENY",
            "error": "ERROR (could not decide)" if self.exit_code == EXIT_UNDECIDED else "ERROR",
        }[self.decision]
        lines = [
            f"gate: {head}: policy {self.policy_name} ({self.policy_digest[:19]}…), "
            f"source {self.source_path}" + (f" @ {self.revision}" if self.revision else "")
        ]
        if self.mode == "audit":
            lines.append(
                "gate: AUDIT MODE: failures below are reported as WARN and do NOT block; "
                "set spec.mode: enforce to block them"
            )
        for f in self.findings:
            if f.outcome == "pass" and not verbose:
                continue
            lines.append(f"  {mark[f.outcome]} {f.check:<22} {f.subject}  [{f.reason}]")
            for d in f.detail.splitlines():
                lines.append(f"         {d}")
        if self.vsa is not None:
            lines.append(
                f"gate: VSA {self.vsa.get('verificationResult')} "
                f"{self.vsa.get('statementDigest', '')[:19]}… signed"
                + (f", written to {self.vsa['path']}" if self.vsa.get("path") else "")
            )
        counts = {o: sum(1 for f in self.findings if f.outcome == o) for o in mark}
        lines.append(
            f"gate: {len(self.findings)} checks: {counts['pass']} passed, {counts['fail']} failed, "
            f"{counts['warn']} warned, {counts['exempt']} exempt ({self.total_ms:.0f} ms)"
        )
        return "\n".join(lines) + "\n"
