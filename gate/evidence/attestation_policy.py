"""One ``attestations[]`` rule over the material found for one artifact digest (pure).

For each signer the rule names, the first piece of material that (1) it
validly signed (``gate.evidence.attestations``), (2) is an in-toto statement
about this digest with the rule's predicate type in its SIGNED body
(``gate.evidence.statement``), and (3) satisfies the rule's content checks
(SLSA, VSA, GitHub options) counts for that signer; the rule holds when the
distinct signers counted reach ``threshold`` (a threshold counts distinct
keys and distinct signing identities, as for image signatures).

Material whose unsigned annotation names another predicate type AND whose
signed body is another type is simply another attestation (a VSA next to the
provenance): it is not a failure. Material whose annotation claims the
rule's type while the signed body says otherwise is ``predicate-type-mismatch``.
No material of the type at all is ``attestation-missing``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gate.errors import SignatureError, VerificationError
from gate.evidence.attestations import Material, PolicySigner, verify_envelope
from gate.evidence.bundle import key_fingerprint
from gate.evidence.cosign import load_policy_key
from gate.evidence.identity import CertificateIdentity
from gate.evidence.reasons import REASON_RANK, rank
from gate.evidence.slsa import verify_provenance
from gate.evidence.statement import AttestationError, Statement, verify_statement
from gate.policy.glob import glob_match
from gate.policy.model import AttestationRule, GitHubAttestation, Key
from gate.sources.trustroot import TrustRoot


@dataclass(frozen=True)
class Accepted:
    """An attestation that satisfied the rule for one signer."""

    signer: str
    signer_id: str
    where: str
    material_digest: str
    statement: Statement


@dataclass
class RuleResult:
    accepted: dict[str, Accepted] = field(default_factory=dict)
    failures: dict[str, VerificationError] = field(default_factory=dict)
    count: int = 0
    threshold: int = 1
    candidates: int = 0  # material of the rule's predicate type (signed or hinted)

    @property
    def ok(self) -> bool:
        return self.count >= self.threshold

    def error(self, subject: str, predicate_type: str) -> VerificationError:
        lines = [f"  {n}: {e.reason}: {e.diagnostics()}" for n, e in self.failures.items()]
        if self.candidates == 0 and not self.accepted:
            # Material that did not verify (another key, another digest) is said, not hidden.
            tried = (
                ("\nmaterial examined that did not count:\n" + "\n".join(lines)) if lines else ""
            )
            return AttestationError(
                f"no {predicate_type} attestation found for {subject}{tried}",
                reason="attestation-missing",
                hint="attach it (cosign attest / GitHub attest-build-provenance with "
                "push-to-registry), supply it with --attestations, or check signatureRepository",
            )
        if self.count > 0:
            return VerificationError(
                f"{self.count} of the {self.threshold} distinct signer(s) required attested "
                f"{predicate_type}\n" + "\n".join(lines),
                reason="threshold-not-met",
            )
        best = min(self.failures.values(), key=lambda e: rank(e.reason))
        return VerificationError(
            f"no acceptable {predicate_type} attestation for {subject}\n" + "\n".join(lines),
            reason=best.reason,
        )


def policy_signer(name: str, key: Key) -> tuple[PolicySigner, str]:
    """The signer and the identity a threshold counts it by (two names for one key are one)."""
    if key.public_key is not None:
        pk = load_policy_key(key.public_key)
        return PolicySigner(name, public_key=pk), f"key:{key_fingerprint(pk)}"
    if key.keyless is not None:
        k = key.keyless
        return PolicySigner(name, keyless=k), f"keyless:{k.issuer}|{k.subject}|{k.subject_regexp}"
    return PolicySigner(name), f"{key.kind}:{name}"


def check_github(opts: GitHubAttestation, identity: CertificateIdentity | None) -> None:
    """``gh attestation verify`` options, read from the Fulcio GitHub extensions."""
    if identity is None:
        raise SignatureError(
            "GitHub attestation options need a keyless (GitHub Actions) signer",
            reason="identity-mismatch",
        )

    def uri(v: str) -> str:
        return v if "://" in v else f"https://github.com/{v.strip('/')}"

    c = identity.claims
    checks = [
        ("sourceRepositoryOwnerURI", uri(opts.owner) if opts.owner else None, False),
        ("sourceRepositoryURI", uri(opts.repository) if opts.repository else None, False),
        ("buildSignerURI", opts.signer_workflow, True),
        ("runnerEnvironment", "github-hosted" if opts.hosted_runners_only else None, False),
    ]
    for claim, want, is_glob in checks:
        if want is None:
            continue
        have = c.get(claim)
        ok = have is not None and (glob_match(want, have) if is_glob else have == want)
        if not ok:
            raise SignatureError(
                f"the signing certificate's {claim} is not what the policy requires",
                reason="identity-mismatch",
                found=repr(have),
                expected=repr(want),
            )


ContentCheck = Callable[[Statement, CertificateIdentity | None], None]


def evaluate_rule(
    rule: AttestationRule,
    keys: Mapping[str, Key],
    materials: Sequence[Material],
    digest: str,
    root: Callable[[], TrustRoot],
    now: dt.datetime,
    *,
    extra_checks: Sequence[ContentCheck] = (),
) -> RuleResult:
    """Apply ``rule`` to ``materials`` found for ``digest``; see the module docstring."""
    from gate.images import max_distinct  # the threshold matching image signatures use

    out = RuleResult(threshold=rule.threshold)
    ordered = sorted(materials, key=lambda m: m.predicate_type_hint != rule.predicate_type)
    hinted = {m.where for m in materials if m.predicate_type_hint == rule.predicate_type}
    typed: set[str] = set(hinted)
    identities: dict[str, str] = {}
    for name in rule.signers:
        signer, identity = policy_signer(name, keys[name])
        identities[name] = identity
        for m in ordered:
            try:
                env = verify_envelope(m, signer, root, now)
                try:
                    statement = verify_statement(
                        env.payload_type, env.payload, digest, rule.predicate_type
                    )
                except AttestationError as e:
                    if e.reason == "predicate-type-mismatch" and m.where not in hinted:
                        continue  # another kind of attestation: not a candidate
                    raise
                typed.add(m.where)
                if rule.github is not None:
                    check_github(rule.github, env.identity)
                if rule.slsa is not None:
                    verify_provenance(statement, rule.slsa, env.identity)
                if rule.vsa is not None:
                    from gate.vsa import check_vsa

                    check_vsa(statement, rule.vsa)
                for check in extra_checks:
                    check(statement, env.identity)
            except VerificationError as e:
                prev = out.failures.get(name)
                if prev is None or rank(e.reason) < rank(prev.reason):
                    e.message = f"{m.where}: {e.message}"
                    out.failures[name] = e
                continue
            except Exception as e:  # unreadable material must never crash the rule
                out.failures.setdefault(
                    name,
                    SignatureError(f"{m.where}: unreadable attestation: {type(e).__name__}: {e}"),
                )
                continue
            out.accepted[name] = Accepted(name, env.signer_id, m.where, m.digest, statement)
            out.failures.pop(name, None)
            break
    out.candidates = len(typed)
    pairs = {(identities[n], a.signer_id) for n, a in out.accepted.items()}
    out.count = max_distinct(pairs)
    return out


__all__ = ["REASON_RANK", "Accepted", "RuleResult", "check_github", "evaluate_rule", "rank"]
