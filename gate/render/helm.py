"""Helm charts: ``helm template`` on a private, verified copy, with no network and no cluster.

What renders is decided before helm starts (``gate.render.helm_stage``): a
private copy of the source chart in which every remote dependency is the exact
archive the chart verifier checked (``RenderRequest.charts``), never a vendored
copy or a re-fetch; ``file://`` dependencies and values files must lie inside
the source directory; symlinks may not leave it.

helm then runs through pyhelm3 with a hardened ``Command``
(``gate.render.helm_command``: exec, a clean environment with every helm
directory in a throw-away home, ``KUBECONFIG`` pointing nowhere, proxies to a
closed port, stdin closed, a time limit and an output cap), with the argv
built here (see docs/adr/0009-helm-rendering.md for why not pyhelm3's own
``template``)::

    helm template --namespace=NS --kube-version=V --api-versions=A ...
                  --values=F ... --include-crds --skip-schema-validation
                  -- RELEASE STAGED_CHART

* ``--skip-schema-validation``: a ``values.schema.json`` ``$ref`` can load
  ``file://`` and ``http(s)://`` URLs;
* ``--include-crds`` and hooks and tests kept: what Argo CD does (it passes
  ``--include-crds`` unless ``skipCrds``, never ``--no-hooks``, and maps
  ``helm.sh/hook`` to its own hooks), so every object Argo CD may apply, hook
  Jobs included, is checked;
* never ``--dry-run=server``, ``--validate``, ``--enable-dns``, ``--repo``,
  ``--version``, ``--dependency-update``, ``--post-renderer``: nothing that
  contacts a cluster, a DNS server or a chart repository, and no plugin.
  ``lookup`` gets an empty result.

The output is parsed with ``gate.yamlstrict.load_all``; a parse error names
the template helm printed in the nearest ``# Source:`` comment.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from gate.aio import run_sync
from gate.errors import GateError, ManifestError, RenderError, SourceError, UsageError
from gate.render.base import Rendered, RenderRequest
from gate.yamlstrict import load_all

__all__ = ["HelmRenderer", "template_argv"]

# helm's own rules: a release name is a DNS-1123 subdomain of at most 53
# characters, a namespace a DNS-1123 label.
# Matched with fullmatch: "$" would accept a trailing newline.
_RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# --api-versions is a comma-split list flag: an entry may not contain a comma.
_API_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-/]*")
_KUBE_VERSION = re.compile(r"v?[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.\-+]*)?")
_SOURCE_LINE = re.compile(rb"^# Source: (.+)$", re.MULTILINE)
_ERROR_LINE = re.compile(r"line (\d+)")


def _check_request(request: RenderRequest) -> None:
    if len(request.release_name) > 53 or not _RELEASE_NAME.fullmatch(request.release_name):
        raise UsageError(
            f"release name {request.release_name!r} is not a valid Helm release name",
            expected="a DNS-1123 subdomain of at most 53 characters",
        )
    if request.namespace is not None and (
        len(request.namespace) > 63 or not _NAMESPACE.fullmatch(request.namespace)
    ):
        raise UsageError(
            f"namespace {request.namespace!r} is not a valid namespace name",
            expected="a DNS-1123 label",
        )
    if request.kube_version is not None and not _KUBE_VERSION.fullmatch(request.kube_version):
        raise UsageError(
            f"kube version {request.kube_version!r} is not a Kubernetes version",
            expected="for example 1.35.0 or v1.35.0",
        )
    for api_version in request.api_versions:
        if not _API_VERSION.fullmatch(api_version):
            raise UsageError(
                f"API version {api_version!r} is not an API version",
                expected="group/version, version or group/version/Kind",
            )


def template_argv(
    request: RenderRequest, chart_dir: Path, values_files: tuple[Path, ...]
) -> list[str]:
    """The ``helm template`` arguments (without the executable), ``--flag=value`` form.

    Values follow their flag with ``=`` and the positionals follow ``--``, so no
    value can be read as another flag.
    """
    argv = ["template"]
    if request.namespace is not None:
        argv.append(f"--namespace={request.namespace}")
    if request.kube_version is not None:
        argv.append(f"--kube-version={request.kube_version}")
    argv.extend(f"--api-versions={api_version}" for api_version in request.api_versions)
    argv.extend(f"--values={path}" for path in values_files)
    argv += ["--include-crds", "--skip-schema-validation", "--", request.release_name]
    argv.append(str(chart_dir))
    return argv


def _helm_executable() -> str:
    helm = shutil.which("helm")
    if helm is None:
        raise RenderError(
            "helm is not on PATH; cannot render a chart",
            reason="renderer-unavailable",
            hint="install helm 4 (scripts/bootstrap.sh) or put it on PATH",
        )
    return helm


def _template_sources(output: bytes) -> list[tuple[int, str]]:
    """(line number, template) for every ``# Source:`` comment of helm's output."""
    return [
        (output.count(b"\n", 0, match.start()) + 1, match.group(1).decode("utf-8", "replace"))
        for match in _SOURCE_LINE.finditer(output)
    ]


def _source_at(sources: list[tuple[int, str]], message: str) -> str | None:
    match = _ERROR_LINE.search(message)
    if match is None:
        return None
    line = int(match.group(1))
    before = [template for number, template in sources if number <= line]
    return before[-1] if before else None


def _report_paths(sources: list[tuple[int, str]]) -> set[str]:
    """``chart/templates/x.yaml`` → ``templates/x.yaml`` (relative to the chart)."""
    out = set()
    for _, template in sources:
        parts = PurePosixPath(template).parts
        if len(parts) > 1 and ".." not in parts:
            out.add(PurePosixPath(*parts[1:]).as_posix())
    return out


class HelmRenderer:
    """Renders a chart directory; ``helm`` is the binary (default: from PATH)."""

    name: str = "helm"

    def __init__(self, helm: str | None = None) -> None:
        self.helm = helm

    def render(self, request: RenderRequest) -> Rendered:
        # Imported here: pyhelm3 costs ~0.2 s to import and only charts need it.
        from gate.render.helm_command import HardenedHelmCommand
        from gate.render.helm_stage import stage_chart

        _check_request(request)
        try:
            request.source_dir.resolve(strict=True)
        except OSError as exc:
            raise SourceError(
                f"cannot read source {request.source_dir}: {exc.strerror or exc}",
                reason="source-unreadable",
            ) from None
        executable = self.helm or _helm_executable()
        with tempfile.TemporaryDirectory(prefix="gate-helm-") as tmp:
            work = Path(tmp)
            staged = stage_chart(
                request.source_dir,
                work / "stage",
                values_files=request.values_files,
                charts=request.charts,
            )
            command = HardenedHelmCommand(
                executable=executable,
                home=work / "home",
                cwd=work,
                timeout_s=request.timeout_s,
                max_output_bytes=request.max_output_bytes,
            )
            argv = template_argv(request, staged.chart_dir, staged.values_files)
            try:
                output = run_sync(lambda: command.run(argv))
            except RenderError as exc:
                # helm names the private copy; say which source that is.
                exc.message = exc.message.replace(str(staged.chart_dir), str(request.source_dir))
                exc.args = (exc.message,)
                raise
        sources = _template_sources(output)
        shown = f"helm template of {request.source_dir}"
        try:
            documents = load_all(output, source=shown, max_bytes=request.max_output_bytes)
        except GateError as exc:
            template = _source_at(sources, exc.message)
            if template is not None and isinstance(exc, ManifestError):
                exc.message = f"{exc.message} (in template {template})"
                exc.args = (exc.message,)
            raise
        files = set(staged.inputs) | _report_paths(sources)
        return Rendered(
            documents=documents,
            renderer=self.name,
            files=tuple(sorted(files, key=lambda p: PurePosixPath(p).parts)),
        )
