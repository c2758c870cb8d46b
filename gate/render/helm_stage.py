"""Stage a chart for ``helm template``: a private copy that holds only what may render.

helm reads the chart directory it is given, follows symlinks in it, and
renders every subchart it finds under ``charts/`` (matched to the declared
dependencies by the *chart name inside*, not by the file name). So the
renderer never hands helm the source directory itself. It builds a private
copy:

* every file of the source, dereferenced: a symlink must resolve inside the
  source directory (``symlink-escape``), a symlinked directory may not contain
  itself (``symlink-loop``), FIFOs, sockets and devices are refused
  (``not-a-regular-file``); the top-level ``.git`` is not copied; the copy is
  bounded in files and bytes (``size-limit``);
* the chart's metadata is read first, by the reader the chart verifier uses
  too (``gate.render.chart_meta``: its refusals, depth limit and size caps),
  and the copy is checked against what it read;
* every dependency declared with a remote repository (``https://``,
  ``http://``, ``oci://``, ``@alias``, ``alias:``, anything but ``file://``
  or nothing), in ``Chart.yaml`` or ``requirements.yaml`` (helm reads both,
  whatever the ``apiVersion``), enabled or not, must have a ``VerifiedChart``
  (``chart-unverified``). Every vendored entry of ``charts/`` whose chart has
  that name (a directory or a ``.tgz``, whatever its file name) is removed and
  the verified archive is written as ``charts/<name>-<version>.tgz``, byte for
  byte: a vendored copy of a remote dependency is exactly what the chart
  verifier exists to check;
* ``file://`` dependencies must resolve inside the source directory
  (``dependency-outside-source``) and are copied from there into
  ``charts/<name>/``, replacing any vendored entry of that name (what
  ``helm dependency build`` would package);
* local subcharts (directories under ``charts/``) are processed the same way,
  recursively (at most ``chart_meta.MAX_CHART_DEPTH`` levels); a vendored
  *archive* that declares a remote dependency of its own is refused
  (``chart-unverified``): it cannot be replaced inside an archive nobody
  verified;
* values files must resolve inside the source directory
  (``values-outside-source``) and be regular files; they are copied next to
  the stage under fixed names (helm splits ``--values`` on commas).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gate.errors import DigestMismatchError, ManifestError, RenderError, SizeLimitError
from gate.render.base import VerifiedChart
from gate.render.chart_meta import (
    METADATA_FILES,
    ChartDependency,
    ChartNode,
    Subchart,
    is_remote_repository,
    read_chart_tree,
)
from gate.render.plain import ensure_inside

__all__ = [
    "MAX_STAGE_BYTES",
    "MAX_STAGE_FILES",
    "StagedChart",
    "is_remote_repository",
    "stage_chart",
]

#: Bytes and files the private copy may hold (the source plus its dependencies).
MAX_STAGE_BYTES = 256 * 1024 * 1024
MAX_STAGE_FILES = 20_000
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class StagedChart:
    chart_dir: Path  # the private copy helm renders
    values_files: tuple[Path, ...]  # private copies, in the order given
    inputs: tuple[str, ...]  # source-relative POSIX paths of what was read


# --- bounded copying -------------------------------------------------------------


@dataclass
class _Budget:
    bytes_left: int = MAX_STAGE_BYTES
    files_left: int = MAX_STAGE_FILES

    def spend(self, size: int, shown: str) -> None:
        self.bytes_left -= size
        self.files_left -= 1
        if self.bytes_left < 0 or self.files_left < 0:
            raise SizeLimitError(
                f"the chart is larger than the staging limit (at {shown})",
                reason="size-limit",
                found=f"more than {MAX_STAGE_FILES} files or {MAX_STAGE_BYTES} bytes",
                expected="a chart of ordinary size",
                hint="check the chart directory for build output or data that is not the chart",
            )


def _shown(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read_regular(real: Path, shown: str, budget: _Budget) -> bytes:
    try:
        info = os.stat(real)
        if not stat.S_ISREG(info.st_mode):
            raise ManifestError(
                f"{shown} is not a regular file",
                reason="not-a-regular-file",
                found=stat.filemode(info.st_mode),
                expected="a regular file",
            )
        budget.spend(info.st_size, shown)
        with open(real, "rb") as handle:
            data = handle.read(budget.bytes_left + info.st_size + 1)
    except FileNotFoundError:
        raise RenderError(f"{shown} is a dangling symlink", reason="render-failed") from None
    except OSError as exc:
        raise RenderError(
            f"cannot read {shown}: {exc.strerror or exc}", reason="render-failed"
        ) from None
    if len(data) > info.st_size:  # grew while we read it
        budget.spend(len(data) - info.st_size, shown)
    return data


def _copy_tree(
    source: Path,
    dest: Path,
    root: Path,
    budget: _Budget,
    *,
    skip_git: bool = False,
    ancestors: frozenset[Path] = frozenset(),
) -> None:
    """Copy ``source`` (a real directory inside ``root``) to ``dest``, dereferenced."""
    ancestors = ancestors | {source}
    dest.mkdir(parents=True, exist_ok=True)
    try:
        entries = sorted(os.scandir(source), key=lambda e: e.name)
    except OSError as exc:
        raise RenderError(
            f"cannot read {_shown(source, root)}: {exc.strerror or exc}", reason="render-failed"
        ) from None
    for entry in entries:
        if skip_git and entry.name == ".git":
            continue
        path = Path(entry.path)
        shown = _shown(path, root)
        real = ensure_inside(path, root) if entry.is_symlink() else path
        if real.is_dir():
            if real in ancestors:
                raise ManifestError(
                    f"{shown} is a symlink to a directory that contains it",
                    reason="symlink-loop",
                    found=str(real),
                    expected="a symlink to a file or to a directory outside its own path",
                    hint="replace the symlink with the files themselves",
                )
            budget.spend(0, shown)
            _copy_tree(real, dest / entry.name, root, budget, ancestors=ancestors)
            continue
        (dest / entry.name).write_bytes(_read_regular(real, shown, budget))


# --- staging ----------------------------------------------------------------------


@dataclass
class _Stager:
    root: Path  # the real source directory
    charts: tuple[VerifiedChart, ...]
    budget: _Budget = field(default_factory=_Budget)
    #: Verified archives written into the stage: never inspected or replaced again.
    placed: set[Path] = field(default_factory=set)

    def verified_for(self, dep: ChartDependency) -> list[VerifiedChart]:
        candidates = [c for c in self.charts if c.name == dep.name]
        exact = [c for c in candidates if c.version == dep.version]
        chosen = exact or candidates
        if not chosen:
            raise ManifestError(
                f"{dep.declared_in} declares dependency {dep.name!r} {dep.version} from "
                f"{dep.repository}, and no verified chart was given for it",
                reason="chart-unverified",
                found=f"{dep.name} {dep.version} from {dep.repository} (not verified)",
                expected="a chart whose provenance or signature the chart verifier checked",
                hint="add a charts rule to the policy that matches this repository, so the "
                "chart is fetched and verified; a copy vendored under charts/ is not enough",
            )
        return chosen

    def process(self, stage: Path, node: ChartNode) -> None:
        """Apply the dependency rules to the staged chart ``stage`` (a copy of ``node``)."""
        _check_copy(stage, node)
        charts_dir = stage / "charts"
        entries = [(charts_dir / sub.entry, _names(sub)) for sub in node.subcharts]
        replaced: set[str] = set()
        removed: set[Path] = set()
        copies: dict[Path, ChartNode] = {}
        for dep in node.dependencies:
            if dep.is_remote:
                chosen = self.verified_for(dep)
                if dep.name not in replaced:
                    removed |= self._remove(entries, dep.name)
                    replaced.add(dep.name)
                for chart in chosen:
                    self._place(charts_dir, chart)
            elif dep.is_file:
                if dep.chart is None or dep.chart.path is None:
                    raise ManifestError(
                        f"{dep.declared_in}: dependency {dep.name!r} ({dep.repository}) is "
                        "not a chart directory",
                        reason="invalid-chart",
                        expected="a directory with a Chart.yaml",
                    )
                staged = charts_dir / dep.name
                if dep.name not in replaced:
                    removed |= self._remove(entries, dep.name)
                    replaced.add(dep.name)
                if staged.is_dir():
                    shutil.rmtree(staged)
                elif staged.exists():
                    staged.unlink()
                _copy_tree(dep.chart.path, staged, self.root, self.budget)
                copies[staged] = dep.chart
        # Local subcharts left in charts/: directories recurse, archives are inspected.
        for sub in node.subcharts:
            path = charts_dir / sub.entry
            if path in removed or path in copies or path in self.placed:
                continue
            if not sub.node.is_archive:
                self.process(path, sub.node)
                continue
            if "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() != sub.node.digest:
                raise _changed(f"{node.shown}charts/{sub.entry}")
            archive_shown = f"{node.shown}charts/{sub.entry}"
            remote = [
                f"{dep.declared_in}: {dep.name} from {dep.repository}"
                for chart in sub.node.charts()
                for dep in chart.dependencies
                if dep.is_remote
            ]
            if remote:
                raise ManifestError(
                    f"{archive_shown} is vendored and declares remote dependencies that "
                    f"cannot be verified inside it: {', '.join(remote)}",
                    reason="chart-unverified",
                    found=remote[0],
                    expected="remote dependencies declared by a chart in the source, "
                    "so that the verified archive can be rendered in their place",
                    hint="declare the chart as a remote dependency itself (so it is "
                    "verified), or vendor its dependencies unpacked",
                )
        for staged, copied in copies.items():
            self.process(staged, copied)

    def _remove(self, entries: list[tuple[Path, set[str]]], name: str) -> set[Path]:
        removed: set[Path] = set()
        for path, names in entries:
            if name in names and (path.exists() or path.is_symlink()):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.add(path)
        return removed

    def _place(self, charts_dir: Path, chart: VerifiedChart) -> None:
        for part in (chart.name, chart.version):
            if not _SAFE_NAME.match(part) or ".." in part:
                raise ManifestError(
                    f"verified chart {chart.name!r} {chart.version!r}: not a usable file name",
                    reason="invalid-chart",
                )
        actual = "sha256:" + hashlib.sha256(chart.archive).hexdigest()
        if actual != chart.digest:
            raise DigestMismatchError(
                f"verified chart {chart.name} {chart.version}: the archive handed to the "
                "renderer is not the one that was verified",
                reason="digest-mismatch",
                found=actual,
                expected=chart.digest,
            )
        charts_dir.mkdir(parents=True, exist_ok=True)
        target = charts_dir / f"{chart.name}-{chart.version}.tgz"
        if target in self.placed:
            if target.read_bytes() != chart.archive:
                raise DigestMismatchError(
                    f"two different verified archives for {chart.name} {chart.version}",
                    reason="digest-mismatch",
                )
            return
        if target.is_dir():
            shutil.rmtree(target)
        self.budget.spend(len(chart.archive), target.name)
        target.write_bytes(chart.archive)
        self.placed.add(target)


def _names(sub: Subchart) -> set[str]:
    """The names a ``charts/`` entry goes by: its chart's name (what helm matches
    dependencies with) and its file name (what people and helm dep build go by)."""
    stem = sub.entry.removesuffix(".tgz")
    names = {sub.node.name, stem}
    names.update(stem[: m.start()] for m in re.finditer(r"-(?=\d)", stem) if m.start() > 0)
    return names


def _changed(shown: str) -> RenderError:
    return RenderError(f"{shown} changed while the chart was staged", reason="render-failed")


def _check_copy(stage: Path, node: ChartNode) -> None:
    """The staged copy's metadata is the metadata that was read and decided on."""
    for name in METADATA_FILES:
        path = stage / name
        data = path.read_bytes() if path.is_file() else None
        if data != node.files.get(name):
            raise _changed(f"{node.shown}{name}")


def _stage_values(
    values_files: Iterable[Path], root: Path, dest: Path, budget: _Budget
) -> tuple[list[Path], list[str]]:
    staged: list[Path] = []
    shown_list: list[str] = []
    dest.mkdir(parents=True, exist_ok=True)
    for position, given in enumerate(values_files):
        real = Path(os.path.realpath(given))
        if real != root and root not in real.parents:
            raise ManifestError(
                f"values file {given} is outside the source directory",
                reason="values-outside-source",
                found=str(real),
                expected=f"a file inside {root}",
                hint="values files must be part of the verified source; give a path inside "
                "the chart directory",
            )
        shown = real.relative_to(root).as_posix()
        if not real.exists():
            raise RenderError(
                f"values file {shown} does not exist",
                reason="values-missing",
                found=str(given),
                expected="an existing file inside the source directory",
            )
        target = dest / f"values-{position}.yaml"
        target.write_bytes(_read_regular(real, shown, budget))
        staged.append(target)
        shown_list.append(shown)
    return staged, shown_list


def stage_chart(
    source_dir: Path,
    work: Path,
    *,
    values_files: Iterable[Path] = (),
    charts: tuple[VerifiedChart, ...] = (),
) -> StagedChart:
    """Build the private copy of the chart at ``source_dir`` under ``work``."""
    root = source_dir.resolve(strict=True)
    stager = _Stager(root=root, charts=charts)
    stage = work / "chart"
    # Values first: a values file that leaves the source gets its own reason.
    values, values_shown = _stage_values(values_files, root, work / "values", stager.budget)
    # The metadata next, before anything else is read (the verifier's reader).
    tree = read_chart_tree(root)
    if tree is None:
        raise ManifestError(
            f"{source_dir} has no Chart.yaml", reason="invalid-chart", expected="a Helm chart"
        )
    _copy_tree(root, stage, root, stager.budget, skip_git=True)
    stager.process(stage, tree)
    inputs = [name for name in ("Chart.yaml", "requirements.yaml", "values.yaml")]
    inputs = [name for name in inputs if (stage / name).is_file()]
    return StagedChart(
        chart_dir=stage,
        values_files=tuple(values),
        inputs=tuple(sorted(set(inputs) | set(values_shown), key=lambda p: PurePosixPath(p).parts)),
    )
