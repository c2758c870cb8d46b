"""Plain manifests: every ``*.yaml``, ``*.yml`` and ``*.json`` under the source.

Recursive and sorted (by path, so the output order does not depend on the
file system). Hidden directories and files (``.git``, ``.github``,
``.pre-commit-config.yaml``) are tool configuration, not manifests, and are
skipped.

Symlinks are resolved and must stay inside the source directory
(``symlink-escape``): a link to ``/etc/...`` or ``/var/run/secrets/...`` in a
repository would otherwise make the gate read, and Argo CD apply, files from
the repo-server's own file system. Symlinked directories are not descended
(as Argo CD's directory walk), but are still checked. A manifest that is not
a regular file (a FIFO would block the read forever) is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from gate.errors import ManifestError, RenderError, SizeLimitError, SourceError
from gate.render.base import Rendered, RenderRequest
from gate.yamlstrict import load_all, load_json

__all__ = ["MANIFEST_SUFFIXES", "PlainRenderer", "ensure_inside", "find_manifest_files"]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def ensure_inside(path: Path, root: Path) -> Path:
    """The real path of ``path``; ``symlink-escape`` if it leaves ``root`` (a real path)."""
    real = Path(os.path.realpath(path))
    if real != root and root not in real.parents:
        raise ManifestError(
            f"{path} is a symlink that leads outside the source directory",
            reason="symlink-escape",
            found=str(real),
            expected=f"a path inside {root}",
            hint="replace the symlink with the file itself",
        )
    return real


def find_manifest_files(root: Path) -> list[str]:
    """Relative POSIX paths of the manifest files under ``root`` (a real path), sorted."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        kept = []
        for name in dirnames:
            if name.startswith("."):
                continue
            if (here / name).is_symlink():
                ensure_inside(here / name, root)
                continue  # not descended, like Argo CD's directory walk
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if name.startswith(".") or not name.endswith(MANIFEST_SUFFIXES):
                continue
            found.append((here / name).relative_to(root).as_posix())
    return sorted(found, key=lambda p: PurePosixPath(p).parts)


class PlainRenderer:
    name: str = "plain"

    def render(self, request: RenderRequest) -> Rendered:
        try:
            root = request.source_dir.resolve(strict=True)
        except OSError as exc:
            raise SourceError(
                f"cannot read source {request.source_dir}: {exc.strerror or exc}",
                reason="source-unreadable",
            ) from None
        files = find_manifest_files(root)
        documents = []
        budget = request.max_output_bytes
        for relative in files:
            data = _read(root / relative, root, relative, budget)
            budget -= len(data)
            if relative.endswith(".json"):
                documents.extend(load_json(data, source=relative))
            else:
                documents.extend(load_all(data, source=relative))
        return Rendered(documents=documents, renderer=self.name, files=tuple(files))


def _read(path: Path, root: Path, relative: str, budget: int) -> bytes:
    real = ensure_inside(path, root)
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(
                f"{relative} is not a regular file",
                reason="not-a-regular-file",
                found=stat.filemode(info.st_mode),
                expected="a regular file",
            )
        with open(real, "rb") as handle:
            data = handle.read(budget + 1)
    except FileNotFoundError:
        raise RenderError(
            f"{relative} is a dangling symlink", reason="render-failed", found=str(real)
        ) from None
    except OSError as exc:
        raise RenderError(
            f"cannot read {relative}: {exc.strerror or exc}", reason="render-failed"
        ) from None
    if len(data) > budget:
        raise SizeLimitError(
            f"the manifests under the source are larger than the limit (at {relative})",
            reason="size-limit",
            hint="split the application, or raise the limit if this size is expected",
        )
    return data
