"""The orchestrator: DESIGN's six steps, fail-closed by construction.

The engine reads the clock once, collects every finding (it does not stop at
the first failure, so one run shows everything that is wrong) and turns any
unexpected exception into a failure. The only path that returns manifests is
the one after an ``allow`` decision.

Evidence verifiers plug in through :class:`Verifiers`; a check the policy asks
for whose verifier is not available is a failure (``verifier-unavailable``),
never a silent pass.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from gate.errors import EvidenceError, GateError, VerificationError
from gate.manifests import (
    ImageField,
    ImageOccurrence,
    extract_images,
    pin_images,
    unclaimed_image_keys,
)
from gate.policy.loader import LoadedPolicy
from gate.policy.match import image_rule_for
from gate.policy.model import ImageRule
from gate.reference import ImageReference, parse_reference
from gate.render import RenderRequest, select_renderer
from gate.render.base import VerifiedChart
from gate.report import Finding, ImageResult, InputAttestation, Report, Severity
from gate.yamlstrict import dump_all


@dataclass(frozen=True)
class SourceInfo:
    """What is being verified, as the caller (CLI, Argo CD, Flux) describes it."""

    path: Path
    revision: str | None = None  # the revision to verify (HEAD by default)
    repo: str | None = None
    target_revision: str | None = None  # what the app asked for (e.g. an Argo CD tag)
    app_name: str | None = None
    app_path: str | None = None  # path of the app inside the checkout (ARGOCD_APP_SOURCE_PATH)


@dataclass(frozen=True)
class GateRequest:
    source: SourceInfo
    values_files: tuple[Path, ...] = ()
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    offline: bool = False
    render_timeout_s: float = 60.0
    #: Attestation files (Sigstore bundles, DSSE envelopes, JSON lines of them) offered as
    #: extra candidates for every image; they count only where their SIGNED statement names
    #: the image's digest and a policy signer signed them (gate.image_attestations).
    attestation_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ImageCheck:
    """One distinct image reference and the rule that governs it."""

    ref: ImageReference
    rule_index: int
    rule: ImageRule


class Findings:
    """Collects findings for one run; the only way verifiers report."""

    def __init__(self, report: Report) -> None:
        self._report = report

    def passed(self, check: str, subject: str, reason: str = "verified", detail: str = "") -> None:
        self._report.add(Finding(check, subject, "pass", reason, detail))

    def failed(
        self,
        check: str,
        subject: str,
        reason: str,
        detail: str = "",
        *,
        severity: Severity = "deny",
    ) -> None:
        self._report.add(Finding(check, subject, "fail", reason, detail, severity))

    def exempt(self, check: str, subject: str, detail: str) -> None:
        self._report.add(Finding(check, subject, "exempt", "exempt", detail))

    def warn(self, check: str, subject: str, reason: str, detail: str = "") -> None:
        self._report.add(Finding(check, subject, "warn", reason, detail))

    def verified_input(self, uri: str, digest: str) -> None:
        """Record a signature / attestation that verified (the VSA's ``inputAttestations``)."""
        self._report.add_input(InputAttestation(uri, digest))

    def error(self, check: str, subject: str, exc: BaseException) -> None:
        """Record an exception as a failure with the right severity."""
        if isinstance(exc, VerificationError):
            self.failed(check, subject, exc.reason, exc.diagnostics())
        elif isinstance(exc, EvidenceError):
            self.failed(check, subject, exc.reason, exc.diagnostics(), severity="undecided")
        elif isinstance(exc, GateError):
            self.failed(check, subject, exc.reason, exc.diagnostics(), severity="internal")
        else:
            self.failed(
                check,
                subject,
                "internal-error",
                f"{type(exc).__name__}: {exc}\n"
                "this is a bug in gitops-gate; the run is denied (fail closed). Please report it.",
                severity="internal",
            )

    def has_failure(self, check_prefix: str, subject: str) -> bool:
        return any(
            f.outcome == "fail" and f.check.startswith(check_prefix) and f.subject == subject
            for f in self._report.findings
        )


@dataclass
class Context:
    """What a verifier may read: the trusted policy, the request and the one clock reading."""

    policy: LoadedPolicy
    request: GateRequest
    now: dt.datetime
    findings: Findings
    #: Post-decision hook: actions a verifier registers (e.g. advancing the rollback
    #: state) that the engine runs ONLY when the final decision is allow, after audit
    #: mode, never on deny or error. An action that fails must record a failure (an
    #: exception is one): the run is then not an allow and hands over no manifests.
    on_allow: list[tuple[str, Callable[[], None]]] = field(default_factory=list)


class SourceVerifier(Protocol):
    """Step 1: Git signatures, tag semantics and tree binding (``spec.source.git``)."""

    def verify_source(self, ctx: Context) -> None: ...


class ChartVerifier(Protocol):
    """Step 2: chart provenance / signatures, before rendering.

    Returns the verified archives the renderer must use. Every chart it could
    not verify must have a failure recorded; the engine then does not render.
    """

    def verify_charts(self, ctx: Context) -> Sequence[VerifiedChart]: ...


class ImageVerifier(Protocol):
    """Step 5: signatures and attestations. Returns the verified digest per reference.

    A reference missing from the result must have a failure recorded for it;
    the engine enforces that (a verifier that forgets to decide is a bug).
    """

    def verify_images(
        self, ctx: Context, checks: Sequence[ImageCheck]
    ) -> Mapping[ImageReference, str]: ...


@dataclass
class Verifiers:
    """The evidence-verifier registry; later issues fill the slots."""

    source: SourceVerifier | None = None
    charts: ChartVerifier | None = None
    images: ImageVerifier | None = None


def default_verifiers() -> Verifiers:
    """The verifiers this build ships with."""
    from gate.charts import HelmChartVerifier
    from gate.images import CosignImageVerifier
    from gate.sources.git_verifier import GitSourceVerifier  # imports gate.engine for types

    return Verifiers(
        source=GitSourceVerifier(), charts=HelmChartVerifier(), images=CosignImageVerifier()
    )


@dataclass
class GateResult:
    report: Report
    manifests: str | None = None  # set only on allow

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


@dataclass
class Engine:
    policy: LoadedPolicy
    verifiers: Verifiers = field(default_factory=default_verifiers)
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))

    def run(self, request: GateRequest) -> GateResult:
        started = time.monotonic()
        now = self.clock()  # the one clock reading every check uses
        spec = self.policy.policy.spec
        report = Report(
            policy_name=self.policy.name,
            policy_digest=self.policy.digest,
            source_path=str(request.source.path),
            revision=request.source.revision,
            repo=request.source.repo,
            verified_at=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        findings = Findings(report)
        ctx = Context(self.policy, request, now, findings)
        manifests: str | None = None
        with _guard(findings, "engine", str(request.source.path)):
            manifests = self._steps(ctx, report)
        if spec.mode == "audit":
            report.apply_audit_mode()
        if report.decision == "allow" and manifests is None:
            # An allow always hands over manifests. Red-team finding
            # (tests/redteam/test_audit_no_output.py): in audit mode a step that
            # stopped the run (an unreadable image field, a chart failure) became a
            # warning, and `gate generate` exited 0 with empty stdout, which Argo CD
            # reads as "no resources" (and prunes them).
            findings.failed(
                "engine",
                str(request.source.path),
                "no-manifests",
                "the run stopped before any manifests were produced (see the warnings "
                "above); nothing can be handed over, so this is a deny even in audit mode",
            )
        if report.decision == "allow" and manifests is not None:
            for check, action in ctx.on_allow:
                with _guard(findings, check, str(request.source.path)):
                    action()
                if report.decision != "allow":
                    break  # a failed action ends the allow: later ones must not run either
        report.total_ms = (time.monotonic() - started) * 1000
        if report.decision != "allow" or manifests is None:
            return GateResult(report, None)
        return GateResult(report, manifests)

    def _steps(self, ctx: Context, report: Report) -> str | None:
        spec = self.policy.policy.spec
        f = ctx.findings
        subject = str(ctx.request.source.path)

        # 1. Source evidence.
        if spec.source.git is not None:
            if self.verifiers.source is None:
                f.failed(
                    "git.source",
                    ctx.request.source.revision or "HEAD",
                    "verifier-unavailable",
                    "the policy requires Git signatures (spec.source.git) but this build has "
                    "no Git verifier; the revision cannot be trusted",
                )
            else:
                with _guard(f, "git.source", ctx.request.source.revision or "HEAD"):
                    self.verifiers.source.verify_source(ctx)

        # 2. Charts: verified archives only; a chart that failed stops the render,
        # because rendering without it would show manifests nobody verified.
        charts: tuple[VerifiedChart, ...] = ()
        if self.verifiers.charts is not None:
            failed_before = len(report.failures)
            with _guard(f, "chart", subject):
                charts = tuple(self.verifiers.charts.verify_charts(ctx))
            if any(x.check.startswith("chart") for x in report.failures[failed_before:]):
                return None

        # 3. Render.
        documents: list[dict[str, Any]] | None = None
        with _guard(f, "render", subject):
            renderer = select_renderer(ctx.request.source.path)
            rendered = renderer.render(
                RenderRequest(
                    source_dir=ctx.request.source.path,
                    values_files=ctx.request.values_files,
                    kube_version=ctx.request.kube_version,
                    api_versions=ctx.request.api_versions,
                    timeout_s=ctx.request.render_timeout_s,
                    charts=charts,
                    checkout_root=checkout_root(ctx.request.source),
                )
            )
            documents = rendered.documents
            f.passed("render", subject, "rendered", f"{len(documents)} objects ({renderer.name})")
        if documents is None:
            return None

        # 4. Extract images.
        occurrences: list[ImageOccurrence] | None = None
        with _guard(f, "manifests.images", subject):
            extra = tuple(
                ImageField(api_version=x.api_version, kind=x.kind, paths=tuple(x.paths))
                for x in spec.image_fields
            )
            occurrences = extract_images(documents, extra)
        if occurrences is None:
            return None
        self._warn_unclaimed(ctx, documents, occurrences)

        # 5. Images.
        verified = self._verify_images(ctx, occurrences, report)

        # 6. Decision and output. Audit mode softens failures before the decision.
        if spec.mode == "audit":
            report.apply_audit_mode()
        if report.failures:
            return None
        if not spec.output.pin_digests:
            return dump_all(documents)
        pinned: dict[tuple[int, tuple[str | int, ...]], str] = {}
        for occ in occurrences:
            ref = parse_reference(occ.ref)
            digest = verified.get(ref)
            if digest is not None:
                pinned[(occ.doc_index, occ.path)] = str(ref.with_digest(digest))
            elif ref.digest is None:
                f.warn(
                    "image.pin",
                    occ.ref,
                    "not-pinned",
                    "exempt image has no verified digest; it is deployed by tag",
                )
        return dump_all(pin_images(documents, pinned))

    def _warn_unclaimed(
        self,
        ctx: Context,
        documents: Sequence[Mapping[str, Any]],
        occurrences: Sequence[ImageOccurrence],
    ) -> None:
        # An `image:` string no extractor claimed is probably a custom resource
        # whose images the policy does not describe: say so, loudly; with
        # `uncheckedImageFields: deny` it blocks (an operator could pull it).
        deny = self.policy.policy.spec.unchecked_image_fields == "deny"
        for index, path in unclaimed_image_keys(documents, occurrences):
            doc = documents[index]
            kind = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
            detail = (
                f"{doc.get('apiVersion')} {kind} has an image at {where} that is NOT verified\n"
                "to fix: if it is a container image, describe it in spec.imageFields"
            )
            subject = f"{kind} {where}"
            if deny:
                ctx.findings.failed("manifests.images", subject, "unchecked-image-field", detail)
            else:
                ctx.findings.warn("manifests.images", subject, "unchecked-image-field", detail)

    def _verify_images(
        self, ctx: Context, occurrences: Sequence[ImageOccurrence], report: Report
    ) -> dict[ImageReference, str]:
        f = ctx.findings
        spec = self.policy.policy.spec
        checks: list[ImageCheck] = []
        seen: set[ImageReference] = set()
        for occ in occurrences:
            try:
                ref = parse_reference(occ.ref)
            except GateError as e:
                f.failed("image.reference", occ.ref, e.reason, _where(occ) + "\n" + e.diagnostics())
                continue
            if ref in seen:
                continue
            seen.add(ref)
            match = image_rule_for(spec, ref)
            if match is None:
                f.failed(
                    "image.policy",
                    str(ref),
                    "no-policy",
                    f"no rule in spec.images matches {ref.name} ({_where(occ)})\n"
                    "to fix: add a spec.images rule whose match covers it, or remove the image",
                )
                continue
            index, rule = match
            if rule.exempt is not None:
                f.exempt("image.policy", str(ref), f"spec.images[{index}]: {rule.exempt}")
                report.images.append(ImageResult(str(ref), ref.digest))
                continue
            checks.append(ImageCheck(ref, index, rule))
        if not checks:
            return {}
        if self.verifiers.images is None:
            for c in checks:
                f.failed(
                    "image.signature",
                    str(c.ref),
                    "verifier-unavailable",
                    f"spec.images[{c.rule_index}] requires signatures/attestations but this build "
                    "has no image verifier",
                )
            return {}
        verified: dict[ImageReference, str] = {}
        with _guard(f, "image.signature", "images"):
            verified = dict(self.verifiers.images.verify_images(ctx, checks))
        for c in checks:
            digest = verified.get(c.ref)
            if digest is None and not f.has_failure("image", str(c.ref)):
                f.failed(
                    "image.signature",
                    str(c.ref),
                    "internal-error",
                    "the image verifier returned no verdict for this image (fail closed)",
                    severity="internal",
                )
            report.images.append(ImageResult(str(c.ref), digest))
        return verified


def checkout_root(source: SourceInfo) -> Path | None:
    """The root of the checkout the source directory belongs to.

    Argo CD names the app path inside the checkout (``ARGOCD_APP_SOURCE_PATH``):
    the root follows from it, with or without ``.git``. Otherwise the directory
    holding ``.git``; ``None`` for a plain directory outside any checkout.
    """
    from gate.sources.git import find_checkout_root

    here = source.path.resolve()
    if source.app_path is not None:
        depth = len([p for p in PurePosixPath(source.app_path).parts if p not in (".", "/")])
        if depth > len(here.parents):
            return None
        return here if depth == 0 else here.parents[depth - 1]
    return find_checkout_root(here)


def _where(occ: ImageOccurrence) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in occ.path).lstrip(".")
    return f"{occ.kind}/{occ.name} {path}"


@contextmanager
def _guard(findings: Findings, check: str, subject: str) -> Iterator[None]:
    """Turn any exception inside a step into a failure: an exception is a deny."""
    try:
        yield
    except Exception as exc:  # fail closed: nothing escapes as an allow
        findings.error(check, subject, exc)
