"""Step 2: chart dependencies. The engine's ``ChartVerifier`` for Helm sources.

When the source directory is a Helm chart (a ``Chart.yaml`` and no
kustomization, as :func:`gate.render.select_renderer` decides), every
dependency it declares is decided here, before anything is rendered. They are
read as Helm reads them, whatever the ``apiVersion``: ``Chart.yaml`` and
``requirements.yaml`` ``dependencies``, pinned by ``Chart.lock`` /
``requirements.lock``, and recursively those of local subcharts (directories
under ``charts/``, ``file://`` dependencies inside the source), whose remote
dependencies the renderer would need as well:

- ``repository`` empty or ``file://…``: part of the source, covered by the
  source's Git signatures when the policy checks them: a ``pass`` note
  (``chart.policy`` / ``in-source``);
- ``https://…`` (or ``http://`` for hosts marked ``insecure``) and
  ``oci://…``: a remote chart. The URL the policy's ``spec.charts[].match``
  globs see is ``<repository>/<name>`` (trailing ``/`` of the repository
  dropped), e.g. ``https://charts.example.com/stable/redis``, or
  ``oci://registry.example.com/charts/redis``;
- anything else (``@alias``, repository names from a local Helm config, URLs
  with user info, a query, escapes or ``.``/``..`` segments, whose text would not
  be the place fetched): ``unresolvable-repository``.

The version fetched is exact: the ``Chart.lock`` (``requirements.lock``) entry
for the dependency when there is a lock, else the ``Chart.yaml`` version, which
must then be an exact version (a range would let the repository choose what is
rendered: ``version-not-pinned``). A lock that does not list a dependency, or
pins another version than an exact ``Chart.yaml`` version, is ``lock-mismatch``.
A lock entry may carry ``digest: sha256:<hex>`` (a gitops-gate extension; Helm
ignores unknown lock fields): the fetched archive must hash to it
(``chart.lock`` / ``digest-mismatch``). Helm's own top-level lock ``digest``
hashes the dependency *declarations*, not archives, and is not used.

Per remote dependency, the first matching ``spec.charts`` rule decides:
``no-policy`` when none matches; ``exempt`` rules are reported (``exempt``,
with the archive's digest) and the chart is still fetched, its ``Chart.yaml``
checked against the name/version asked for, and handed to the renderer
(otherwise an exempt chart could not be rendered at all); ``provenance``
requires a ``.prov`` signed by its PGP signers (``gate.evidence.helm_prov``);
``signatures`` requires cosign signatures on the OCI chart *manifest* digest
(the image signature machinery of ``gate.images``; an HTTP chart cannot carry
them: ``unsigned``). Both may be required. Findings: ``chart.policy``,
``chart.lock``, ``chart.provenance``, ``chart.signature``; verified ``.prov``
files and signatures are the VSA's inputs.

Dependencies are verified whatever their ``condition``/``tags`` (the values
that would disable them are not evaluated: fail closed). The archives returned
are the exact bytes verified; the renderer renders those and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from gate.aio import run_sync
from gate.errors import (
    DigestMismatchError,
    FetchError,
    GateError,
    MissingEvidenceError,
    VerificationError,
)
from gate.evidence.helm_prov import (
    check_archive_identity,
    read_chart_archive,
    verify_provenance,
)
from gate.policy.match import chart_rule_for
from gate.policy.model import ChartRule, Key
from gate.render.base import VerifiedChart
from gate.render.chart_meta import read_chart_tree
from gate.sources.charts import ChartRepositories, FetchedChart, oci_repo_name
from gate.sources.registry import Deadline
from gate.sources.trustroot import TrustRoot, lazy_policy_trust_root

if TYPE_CHECKING:  # pragma: no cover
    from gate.engine import Context

__all__ = ["Dependency", "HelmChartVerifier", "read_dependencies"]

CHECK_POLICY = "chart.policy"
CHECK_LOCK = "chart.lock"
CHECK_PROVENANCE = "chart.provenance"
CHECK_SIGNATURE = "chart.signature"
DEFAULT_DEADLINE_S = 45.0
_EXACT_VERSION = re.compile(
    r"v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY_URL = re.compile(
    r"(?P<scheme>https?|oci)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?P<path>(?:/[A-Za-z0-9._~-]+)*)/?"
)

Kind = Literal["http", "oci", "local", "unresolvable"]


@dataclass(frozen=True)
class Dependency:
    """One dependency as the source declares it (and its lock pins it)."""

    name: str
    version: str  # as declared in Chart.yaml / requirements.yaml
    repository: str
    locked_version: str | None = None
    locked_digest: str | None = None  # "sha256:<hex>" from the lock entry, if any
    lock_error: str | None = None  # why the lock does not fit this dependency

    @property
    def kind(self) -> Kind:
        repo = self.repository
        if not repo or repo.startswith("file://"):
            return "local"
        # Only plain URLs: the policy matches the text, so it must be the place fetched
        # (no dot segments, escapes, user info, query or fragment).
        m = _REPOSITORY_URL.fullmatch(repo)
        if m is None or any(seg in (".", "..") for seg in (m.group("path") or "").split("/")):
            return "unresolvable"
        return "oci" if m.group("scheme") == "oci" else "http"

    @property
    def chart_url(self) -> str:
        """What ``spec.charts[].match`` sees: ``<repository>/<name>`` / ``oci://host/path/name``."""
        if self.kind == "oci":
            return "oci://" + oci_repo_name(self.repository, self.name)
        return f"{self.repository.rstrip('/')}/{self.name}"

    @property
    def exact_version(self) -> str | None:
        if self.locked_version is not None:
            return self.locked_version
        return self.version if _EXACT_VERSION.fullmatch(self.version) else None

    @property
    def subject(self) -> str:
        if self.kind == "local":
            return f"{self.name} ({self.repository or 'charts/'})"
        return f"{self.chart_url}:{self.exact_version or self.version}"


def read_dependencies(source_dir: Path) -> list[Dependency]:
    """The dependencies of the chart in ``source_dir`` (``[]`` when it is not a chart).

    Read by the reader the renderer uses too (``gate.render.chart_meta``: the
    same refusals, depth limit and size caps): ``Chart.yaml`` and
    ``requirements.yaml``, pinned by ``Chart.lock`` / ``requirements.lock``, of
    the chart and, recursively, of its local subcharts (directories under
    ``charts/``, ``file://`` dependencies inside the source): their remote
    dependencies are rendered as well. Remote dependencies inside vendored
    archives cannot be swapped; the renderer refuses them.
    """
    tree = read_chart_tree(source_dir)
    if tree is None:
        return []
    out: list[Dependency] = []
    seen: set[Path] = set()
    for chart in tree.charts():
        if chart.path is None or chart.path in seen:
            continue  # an archive, or a directory reached twice
        seen.add(chart.path)
        for declared in chart.dependencies:
            dep = Dependency(declared.name, declared.version, declared.repository)
            if chart.lock is not None and dep.kind not in ("local", "unresolvable"):
                dep = _apply_lock(dep, chart.lock, chart.lock_shown)
            out.append(dep)
    return out


def _apply_lock(dep: Dependency, lock: Sequence[Mapping[str, Any]], lock_name: str) -> Dependency:
    found = [
        e
        for e in lock
        if e.get("name") == dep.name
        and str(e.get("repository") or "").rstrip("/") == dep.repository.rstrip("/")
    ]
    if len(found) != 1:
        why = f"{lock_name} does not list {dep.name} from {dep.repository}"
        if found:
            why = f"{lock_name} lists {dep.name} from {dep.repository} more than once"
        return Dependency(dep.name, dep.version, dep.repository, lock_error=why)
    entry = found[0]
    version = entry.get("version")
    if not isinstance(version, str) or not _EXACT_VERSION.fullmatch(version):
        return Dependency(
            dep.name,
            dep.version,
            dep.repository,
            lock_error=f"{lock_name} pins {dep.name} to {version!r}, not an exact version",
        )
    if _EXACT_VERSION.fullmatch(dep.version) and dep.version != version:
        return Dependency(
            dep.name,
            dep.version,
            dep.repository,
            lock_error=f"{lock_name} pins {dep.name} {version}, Chart.yaml asks for {dep.version}",
        )
    digest = entry.get("digest")
    if digest is not None and (not isinstance(digest, str) or not _DIGEST.fullmatch(digest)):
        return Dependency(
            dep.name,
            dep.version,
            dep.repository,
            lock_error=f"{lock_name}: the digest of {dep.name} is not sha256:<64 hex>",
        )
    return Dependency(dep.name, dep.version, dep.repository, version, digest)


class HelmChartVerifier:
    """Verifies a Helm source's remote dependencies (``engine.ChartVerifier``)."""

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        docker_config: str | None = None,
    ) -> None:
        self.transport = transport
        self.deadline_s = deadline_s
        self.docker_config = docker_config

    def verify_charts(self, ctx: Context) -> Sequence[VerifiedChart]:
        from gate.render.kustomize import KUSTOMIZATION_NAMES

        source = ctx.request.source.path
        if any((source / n).is_file() for n in KUSTOMIZATION_NAMES):
            return ()  # rendered by kustomize, whose helmCharts stay disabled
        try:
            deps = read_dependencies(source)
        except GateError:
            # Refused by the shared reader (gate.render.chart_meta): nothing is fetched.
            # The renderer reads the same source with the same reader first thing and
            # refuses it with the same reason; the deny is reported once, by the render
            # step (where helm would have read it).
            return ()
        remote: dict[tuple[str, str, str], Dependency] = {}
        for dep in deps:
            if dep.kind == "local":
                ctx.findings.passed(
                    CHECK_POLICY,
                    dep.subject,
                    "in-source",
                    "part of the source (covered by its Git signatures when spec.source.git "
                    "is set); nothing is fetched",
                )
            elif dep.kind == "unresolvable":
                ctx.findings.failed(
                    CHECK_POLICY,
                    dep.subject,
                    "unresolvable-repository",
                    f"dependency {dep.name}: repository {dep.repository!r} is not a plain "
                    "https://, http:// or oci:// URL (no user info, query, escapes or dot "
                    "segments)\nto fix: write the repository's URL in Chart.yaml (repository "
                    "names from a local Helm config mean nothing to the gate)",
                )
            else:
                remote.setdefault((dep.repository, dep.name, dep.exact_version or dep.version), dep)
        if not remote:
            return ()
        result: list[VerifiedChart | None] = run_sync(lambda: self._run(ctx, list(remote.values())))
        return tuple(c for c in result if c is not None)

    async def _run(self, ctx: Context, deps: list[Dependency]) -> list[VerifiedChart | None]:
        trust_root = lazy_policy_trust_root(ctx.policy)

        deadline = Deadline(self.deadline_s)
        async with ChartRepositories(
            ctx.policy.policy.spec.registries,
            deadline=deadline,
            transport=self.transport,
            docker_config=self.docker_config,
        ) as repos:
            tasks = [asyncio.ensure_future(self._one(repos, ctx, d, trust_root)) for d in deps]
            try:
                async with asyncio.timeout(self.deadline_s + 5.0):
                    await asyncio.gather(*tasks)
            except TimeoutError:
                for d, t in zip(deps, tasks, strict=True):
                    if not t.done():
                        t.cancel()
                        ctx.findings.error(
                            CHECK_POLICY,
                            d.subject,
                            FetchError(f"fetching {d.subject} did not finish within the deadline"),
                        )
            return [t.result() if t.done() and not t.cancelled() else None for t in tasks]

    async def _one(
        self,
        repos: ChartRepositories,
        ctx: Context,
        dep: Dependency,
        trust_root: Callable[[], TrustRoot],
    ) -> VerifiedChart | None:
        f = ctx.findings
        subject = dep.subject
        spec = ctx.policy.policy.spec
        match = chart_rule_for(spec, dep.chart_url)
        if match is None:
            f.failed(
                CHECK_POLICY,
                subject,
                "no-policy",
                f"no rule in spec.charts matches {dep.chart_url}\n"
                "to fix: add a spec.charts rule whose match covers it, or remove the dependency",
            )
            return None
        index, rule = match
        if dep.lock_error is not None:
            f.failed(
                CHECK_LOCK,
                subject,
                "lock-mismatch",
                f"{dep.lock_error}\nto fix: run 'helm dependency update' and commit the lock",
            )
            return None
        version = dep.exact_version
        if version is None:
            f.failed(
                CHECK_POLICY,
                subject,
                "version-not-pinned",
                f"dependency {dep.name} asks for {dep.version!r}, not an exact version, and no "
                "lock pins it\nto fix: commit Chart.lock (helm dependency update) or pin the "
                "version",
            )
            return None
        check = CHECK_POLICY
        try:
            if rule.signatures is not None and dep.kind != "oci":
                check = CHECK_SIGNATURE
                raise MissingEvidenceError(
                    f"spec.charts[{index}] requires cosign signatures, which only OCI charts "
                    "can carry; this dependency comes from an HTTP chart repository",
                    hint="publish the chart to an OCI registry, or require provenance instead",
                )
            want_prov = rule.exempt is None and rule.provenance is not None
            if dep.kind == "oci":
                fetched = await repos.fetch_oci(
                    dep.repository, dep.name, version, want_provenance=want_prov
                )
            else:
                fetched = await repos.fetch_http(
                    dep.repository, dep.name, version, want_provenance=want_prov
                )
            check = CHECK_LOCK
            _check_lock(dep, fetched)
            if rule.exempt is not None:
                check = CHECK_POLICY
                check_archive_identity(read_chart_archive(fetched.archive), dep.name, version)
                f.exempt(
                    CHECK_POLICY,
                    subject,
                    f"spec.charts[{index}]: {rule.exempt} (archive {fetched.digest}, "
                    f"from {fetched.source}; NOT verified)",
                )
                return _verified(fetched)
            ok = True
            if rule.provenance is not None:
                check = CHECK_PROVENANCE
                ok = self._provenance(ctx, subject, rule, fetched) and ok
            if rule.signatures is not None:
                check = CHECK_SIGNATURE
                ok = await self._signatures(repos, ctx, subject, rule, fetched, trust_root) and ok
            if not ok:
                return None
            if rule.provenance is None:  # verify_provenance compared it already
                check = CHECK_SIGNATURE
                check_archive_identity(read_chart_archive(fetched.archive), dep.name, version)
            return _verified(fetched)
        except Exception as exc:  # fail closed: every exception is a failure
            f.error(check, subject, exc)
            return None

    @staticmethod
    def _provenance(ctx: Context, subject: str, rule: ChartRule, fetched: FetchedChart) -> bool:
        assert rule.provenance is not None
        f = ctx.findings
        try:
            if fetched.provenance is None:
                raise MissingEvidenceError(
                    f"no provenance file for {fetched.source}",
                    expected=f"{fetched.source}.prov"
                    if fetched.manifest_digest is None
                    else "a provenance layer in the chart manifest",
                    hint="package the chart with 'helm package --sign' and publish the .prov",
                )
            keys = _pgp_keys(rule.provenance.signers, ctx.policy.policy.spec.keys)
            verified = verify_provenance(
                fetched.provenance,
                fetched.archive,
                name=fetched.name,
                version=fetched.version,
                keys=keys,
                threshold=rule.provenance.threshold,
                now=ctx.now,
            )
        except Exception as exc:
            f.error(CHECK_PROVENANCE, subject, exc)
            return False
        f.verified_input(
            fetched.provenance_uri or f"{fetched.source}.prov",
            "sha256:" + hashlib.sha256(fetched.provenance).hexdigest(),
        )
        f.passed(
            CHECK_PROVENANCE,
            subject,
            "verified",
            f"{verified.file_name} {verified.digest} signed by "
            f"{'/'.join(sorted(verified.key_names))} ({verified.signer_fingerprint})",
        )
        return True

    @staticmethod
    async def _signatures(
        repos: ChartRepositories,
        ctx: Context,
        subject: str,
        rule: ChartRule,
        fetched: FetchedChart,
        trust_root: Callable[[], TrustRoot],
    ) -> bool:
        from gate.images import CosignImageVerifier
        from gate.reference import parse_reference

        assert rule.signatures is not None
        assert fetched.manifest_digest is not None and fetched.repo_name is not None
        f = ctx.findings
        try:
            ref = parse_reference(f"{fetched.repo_name}@{fetched.manifest_digest}")
            verdict = await CosignImageVerifier().verify_signatures(
                repos.registry,
                ref,
                fetched.manifest_digest,
                rule.signatures,
                ctx.policy.policy.spec.keys,
                now=ctx.now,
                trust_root=trust_root,
            )
        except Exception as exc:
            f.error(CHECK_SIGNATURE, subject, exc)
            return False
        for cand in verdict.used:
            f.verified_input(cand.uri, cand.digest)
        if verdict.failure is not None:
            f.error(CHECK_SIGNATURE, subject, verdict.failure)
            return False
        f.passed(CHECK_SIGNATURE, subject, "verified", f"chart manifest {verdict.detail}")
        return True


def _pgp_keys(names: Sequence[str], keys: Mapping[str, Key]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        key = keys[name]
        if key.pgp is None:
            raise VerificationError(
                f"provenance signer {name!r} is a {key.kind} key; Helm provenance is PGP",
                reason="policy-key-unusable",
                hint="list pgp keys under provenance.signers (cosign keys go under signatures)",
            )
        out[name] = key.pgp
    return out


def _check_lock(dep: Dependency, fetched: FetchedChart) -> None:
    if dep.locked_digest is not None and dep.locked_digest != fetched.digest:
        raise DigestMismatchError(
            f"{fetched.source} is not the archive the lock pins",
            found=fetched.digest,
            expected=f"{dep.locked_digest} (lock)",
            hint="the repository serves other bytes than were locked; investigate, then "
            "update the lock deliberately",
        )


def _verified(fetched: FetchedChart) -> VerifiedChart:
    return VerifiedChart(
        fetched.name, fetched.version, fetched.source, fetched.archive, fetched.digest
    )
