"""The renderer interface: a source directory in, parsed Kubernetes objects out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "RenderRequest", "Rendered", "Renderer", "VerifiedChart"]

DEFAULT_MAX_OUTPUT_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class VerifiedChart:
    """A chart archive whose provenance or signature held, as the exact bytes verified.

    The Helm renderer renders these bytes and nothing else: never a re-fetch
    (the repository could serve other bytes the second time).
    """

    name: str
    version: str
    source: str  # where it came from: https://…/name-version.tgz or oci://…@sha256:…
    archive: bytes  # the .tgz, byte for byte as verified
    digest: str  # "sha256:<hex>" of ``archive``


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
    #: Chart dependencies the chart verifier proved, to render in place of anything
    #: the source itself might carry for them.
    charts: tuple[VerifiedChart, ...] = ()
    #: The checkout root: nothing a renderer reads may lie outside it (kustomize
    #: ``../base`` may leave the app directory, never the repository). ``None``:
    #: unknown (a plain directory outside any checkout), the source directory rules.
    checkout_root: Path | None = None


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
