"""Rendering: plain YAML, kustomize, Helm (next issue), behind one interface.

Every renderer returns objects parsed by ``gate.yamlstrict`` (duplicate keys,
alias bombs and odd tags refused), and every external tool runs through
``gate.render.process.run_tool``: no shell, a clean environment, no stdin,
a time limit and an output cap.
"""

from __future__ import annotations

from pathlib import Path

from gate.errors import SourceError
from gate.render.base import DEFAULT_MAX_OUTPUT_BYTES, Rendered, Renderer, RenderRequest
from gate.render.helm import HelmRenderer
from gate.render.kustomize import KUSTOMIZATION_NAMES, KustomizeRenderer
from gate.render.plain import PlainRenderer

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "HelmRenderer",
    "KustomizeRenderer",
    "PlainRenderer",
    "RenderRequest",
    "Rendered",
    "Renderer",
    "select_renderer",
]


def select_renderer(source_dir: Path) -> Renderer:
    """Kustomize if the directory has a kustomization, Helm if it has a
    ``Chart.yaml``, plain YAML otherwise.

    Kustomize is checked first: a directory with both is a kustomize overlay
    that happens to hold a chart (kustomize's ``helmCharts`` stays disabled).
    """
    if not source_dir.is_dir():
        raise SourceError(
            f"source {source_dir} is not a directory",
            reason="source-unreadable",
            found=str(source_dir),
            expected="a directory with manifests, a kustomization or a chart",
        )
    if any((source_dir / name).is_file() for name in KUSTOMIZATION_NAMES):
        return KustomizeRenderer()
    if (source_dir / "Chart.yaml").is_file():
        return HelmRenderer()
    return PlainRenderer()
