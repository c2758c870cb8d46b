"""The renderer interface: a source directory in, parsed Kubernetes objects out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "RenderRequest", "Rendered", "Renderer"]

DEFAULT_MAX_OUTPUT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class RenderRequest:
    """What to render, and the bounds to render it in.

    The Helm-only fields (values files, kube and API versions, release name,
    namespace) mirror ``helm template`` and Argo CD's ``KUBE_VERSION`` /
    ``KUBE_API_VERSIONS``; the other renderers ignore them.
    """

    source_dir: Path
    values_files: tuple[Path, ...] = ()
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    release_name: str = "release"
    namespace: str | None = None
    timeout_s: float = 60
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES


@dataclass(frozen=True)
class Rendered:
    """Parsed objects (``kind: List`` flattened), who made them, from which files.

    ``files`` are POSIX paths relative to the source directory (``../base/...``
    for kustomize bases outside it): the inputs a report can point at.
    """

    documents: list[dict[str, Any]]
    renderer: str
    files: tuple[str, ...]


class Renderer(Protocol):
    name: str

    def render(self, request: RenderRequest) -> Rendered: ...
