"""The gate's own Verification Summary Attestation, one per decision, signed.

SLSA VSA v1 (slsa.dev/spec/v1.0/verification_summary), in an in-toto v1
statement, in a DSSE envelope (payload type ``application/vnd.in-toto+json``)
signed with the cosign key file ``spec.output.vsa.key`` names. ADR 0007 says
why each field is what it is; in short:

- ``verifier.id`` :data:`VERIFIER_ID`, ``verifier.version`` ``{"gitops-gate": __version__}``;
- ``timeVerified``: the engine's one clock reading (``Report.verified_at``);
- ``resourceUri``: ``git+<repo>@<revision>`` when the caller names the
  repository (Argo CD, ``gate verify --repo``), else the ``file://`` URI of
  the source directory;
- ``policy``: the policy file's ``file://`` URI and the sha256 of its bytes
  (the digest every report carries);
- ``inputAttestations``: every signature and attestation that verified, by
  ``oci://`` URI and the sha256 of the exact bytes;
- ``verificationResult``: ``PASSED`` only for an enforce-mode allow (or an
  audit-mode allow with nothing softened to a warning); else ``FAILED``;
- ``verifiedLevels``: ``[]`` on PASSED (the gate proves its policy, not a
  SLSA track level), ``["FAILED"]`` on FAILED (the spec's SlsaResult value);
- subjects: the pinned manifests (sha256 of the bytes written, on allow),
  each verified image digest, and the Git commit when its signatures and
  tree binding held; a run that proved none of these names the resource.

The signing key is loaded (and its password checked) BEFORE any verification
work (:func:`load_vsa_signer`): a wrong or missing password is a usage error
(exit 2), never a crash after the decision. The gate never writes an
unsigned summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate import __version__
from gate.errors import UsageError
from gate.evidence.statement import IN_TOTO_PAYLOAD_TYPE, STATEMENT_V1, VSA_V1
from gate.policy.loader import LoadedPolicy
from gate.reference import parse_reference
from gate.report import Report
from gate.signing import Envelope, Signer, sign_envelope
from gate.signing.keyfile import open_policy_key

VERIFIER_ID = "https://gitops-gate.dev/verifier"
PASSWORD_ENV = "GATE_VSA_KEY_PASSWORD"  # noqa: S105 - the variable's name, not a password
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class VsaSigner:
    """The opened ``spec.output.vsa.key`` and where it came from (for messages)."""

    signer: Signer
    key_path: Path


def load_vsa_signer(
    policy: LoadedPolicy, environ: Mapping[str, str] | None = None, *, flag: str = "--vsa"
) -> VsaSigner:
    """Open the policy's VSA key with ``$GATE_VSA_KEY_PASSWORD``; usage errors (exit 2) only.

    Call it before the engine runs: an operator mistake must stop the gate
    before it does any verification work, not after it has decided.
    """
    env = os.environ if environ is None else environ
    cfg = policy.policy.spec.output.vsa
    if cfg is None:
        raise UsageError(
            f"{flag} asks for a signed verification summary, but the policy configures no key",
            expected="spec.output.vsa.key: a cosign key file (cosign generate-key-pair)",
            hint="set spec.output.vsa.key in the policy; the gate never writes an unsigned "
            "summary a later stage might trust",
        )
    signer, path = open_policy_key(
        policy,
        cfg.key,
        password_env=PASSWORD_ENV,
        environ=env,
        purpose="VSA signing",
        field="spec.output.vsa.key",
    )
    return VsaSigner(signer, path)


# --- the statement ---------------------------------------------------------------------------


def _sha256_hex(digest: str) -> str | None:
    algorithm, _, hex_value = digest.partition(":")
    return hex_value if algorithm == "sha256" and hex_value else None


def resource_uri(report: Report) -> str:
    """``git+<repo>@<revision>`` when the repository is known, else the source's ``file://`` URI."""
    if report.repo:
        repo = report.repo if report.repo.startswith("git+") else f"git+{report.repo}"
        return f"{repo}@{report.revision}" if report.revision else repo
    return Path(report.source_path).resolve().as_uri()


def policy_uri(policy: LoadedPolicy) -> str:
    return Path(policy.path).resolve().as_uri()


def verification_result(report: Report) -> str:
    """PASSED only for an allow that holds as written (slsa.dev verificationResult)."""
    if report.decision != "allow":
        return "FAILED"
    if report.mode == "audit" and any(f.outcome == "warn" for f in report.findings):
        return "FAILED"  # audit softened something (or warned): the policy did not hold
    return "PASSED"


def _proven_commit(report: Report) -> str | None:
    """The commit whose signatures (git.signers) and tree binding (git.tree) held."""
    if not any(f.check == "git.tree" and f.outcome == "pass" for f in report.findings):
        return None
    for f in report.findings:
        if f.check == "git.signers" and f.outcome == "pass" and _COMMIT.fullmatch(f.subject):
            return f.subject
    return None


def subjects(report: Report, manifests: str | None, resource: str) -> list[dict[str, Any]]:
    """The artifacts this decision is about (in-toto v1: each with a digest set)."""
    out: list[dict[str, Any]] = []
    if manifests is not None:
        out.append(
            {
                "name": "manifests.yaml",
                "digest": {"sha256": hashlib.sha256(manifests.encode()).hexdigest()},
            }
        )
    exempt = {f.subject for f in report.findings if f.outcome == "exempt"}
    seen: set[tuple[str, str]] = set()
    for image in report.images:
        hex_value = _sha256_hex(image.digest) if image.digest else None
        if hex_value is None or image.ref in exempt:
            continue  # not verified: an exempt image's digest is not vouched for
        name = parse_reference(image.ref).name
        if (name, hex_value) not in seen:
            seen.add((name, hex_value))
            out.append({"name": name, "digest": {"sha256": hex_value}})
    commit = _proven_commit(report)
    if commit is not None:
        out.append({"name": resource, "digest": {"gitCommit": commit}})
    if not out:
        # Nothing was proven (e.g. a deny before any digest). in-toto requires a digest;
        # this one is of the resource's NAME, which no artifact has (ADR 0007).
        out.append(
            {"name": resource, "digest": {"sha256": hashlib.sha256(resource.encode()).hexdigest()}}
        )
    return out


def build_statement(
    report: Report, policy: LoadedPolicy, manifests: str | None = None
) -> dict[str, Any]:
    """The VSA statement for ``report`` (``manifests``: the pinned bytes, on allow)."""
    resource = resource_uri(report)
    result = verification_result(report)
    policy_hex = _sha256_hex(report.policy_digest)
    if policy_hex is None:  # pragma: no cover - the loader always digests with sha256
        raise TypeError(report.policy_digest)
    # Field names and meanings: slsa.dev/spec/v1.0/verification_summary#schema.
    predicate: dict[str, Any] = {
        "verifier": {"id": VERIFIER_ID, "version": {"gitops-gate": __version__}},
        "timeVerified": report.verified_at,
        "resourceUri": resource,
        "policy": {"uri": policy_uri(policy), "digest": {"sha256": policy_hex}},
        "inputAttestations": [
            {"uri": i.uri, "digest": {"sha256": h}}
            for i in report.inputs
            if (h := _sha256_hex(i.digest)) is not None
        ],
        "verificationResult": result,
        # SlsaResult: the highest level per track verified for the artifact, or FAILED.
        "verifiedLevels": [] if result == "PASSED" else ["FAILED"],
        "slsaVersion": "1.0",
    }
    return {
        "_type": STATEMENT_V1,
        "subject": subjects(report, manifests if result == "PASSED" else None, resource),
        "predicateType": VSA_V1,
        "predicate": predicate,
    }


def statement_bytes(statement: Mapping[str, Any]) -> bytes:
    return json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class SignedVsa:
    statement: dict[str, Any]
    envelope: Envelope

    @property
    def statement_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.envelope.payload).hexdigest()

    def envelope_json(self) -> str:
        return self.envelope.to_json().decode() + "\n"


def sign_vsa(
    report: Report, policy: LoadedPolicy, signer: VsaSigner, manifests: str | None = None
) -> SignedVsa:
    """Build and sign this decision's VSA (DSSE over PAE, keyid "" as cosign writes)."""
    statement = build_statement(report, policy, manifests)
    envelope = sign_envelope(statement_bytes(statement), IN_TOTO_PAYLOAD_TYPE, signer.signer)
    return SignedVsa(statement, envelope)


def record(report: Report, vsa: SignedVsa, path: str | None) -> None:
    """The report's ``vsa`` field: small (the digest and where it went), not the envelope."""
    report.vsa = {
        "predicateType": VSA_V1,
        "verificationResult": str(vsa.statement["predicate"]["verificationResult"]),
        "statementDigest": vsa.statement_digest,
        **({"path": path} if path else {}),
    }


__all__ = [
    "PASSWORD_ENV",
    "VERIFIER_ID",
    "SignedVsa",
    "VsaSigner",
    "build_statement",
    "load_vsa_signer",
    "policy_uri",
    "record",
    "resource_uri",
    "sign_vsa",
    "statement_bytes",
    "subjects",
    "verification_result",
]
