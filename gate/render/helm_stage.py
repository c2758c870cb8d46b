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
  recursively; a vendored *archive* that declares a remote dependency of its
  own is refused (``chart-unverified``): it cannot be replaced inside an
  archive nobody verified;
* values files must resolve inside the source directory
  (``values-outside-source``) and be regular files; they are copied next to
  the stage under fixed names (helm splits ``--values`` on commas).
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from gate.errors import DigestMismatchError, ManifestError, RenderError, SizeLimitError
from gate.render.base import VerifiedChart
from gate.render.plain import ensure_inside
from gate.yamlstrict import load_all

__all__ = [
    "MAX_STAGE_BYTES",
    "MAX_STAGE_FILES",
    "Dependency",
    "StagedChart",
    "chart_dependencies",
    "is_remote_repository",
    "stage_chart",
]

#: Bytes and files the private copy may hold (the source plus its dependencies).
MAX_STAGE_BYTES = 256 * 1024 * 1024
MAX_STAGE_FILES = 20_000
#: Decompressed size of one vendored archive that is inspected (helm's own
#: default cap on a decompressed chart is 100 MiB).
MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
#: How deep subcharts may nest.
MAX_CHART_DEPTH = 16
_MAX_METADATA_BYTES = 1024 * 1024
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Dependency:
    name: str
    version: str
    repository: str
    declared_in: str  # "Chart.yaml" or "requirements.yaml", for messages

    @property
    def is_file(self) -> bool:
        return self.repository.startswith("file://")

    @property
    def is_remote(self) -> bool:
        return is_remote_repository(self.repository)


@dataclass(frozen=True)
class StagedChart:
    chart_dir: Path  # the private copy helm renders
    values_files: tuple[Path, ...]  # private copies, in the order given
    inputs: tuple[str, ...]  # source-relative POSIX paths of what was read


def is_remote_repository(repository: str) -> bool:
    """Is a dependency with this ``repository`` fetched from somewhere?

    Empty means "vendored under charts/", ``file://`` a local directory;
    anything else (``https://``, ``http://``, ``oci://``, ``@name``,
    ``alias:name``, a bare repository name) names a remote repository.
    """
    repository = repository.strip()
    return bool(repository) and not repository.startswith("file://")


# --- chart metadata --------------------------------------------------------------


#: Fields helm reads from Chart.yaml / requirements.yaml (chart.Metadata) and from a
#: dependency entry (chart.Dependency), by their JSON names.
_METADATA_FIELDS = frozenset(
    [
        "name",
        "home",
        "sources",
        "version",
        "description",
        "keywords",
        "maintainers",
        "icon",
        "apiVersion",
        "condition",
        "tags",
        "appVersion",
        "deprecated",
        "annotations",
        "kubeVersion",
        "dependencies",
        "type",
    ]
)
_DEPENDENCY_FIELDS = frozenset(
    ["name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias"]
)


def _check_spelling(doc: Mapping[str, Any], fields: frozenset[str], shown: str) -> None:
    """Refuse a key that helm would read as one of ``fields`` under another spelling.

    helm decodes chart metadata with Go's encoding/json, which matches keys
    case-insensitively (with Unicode folding: ``Name``, ``NAME``, a long s for s).
    Red-team: a vendored ``charts/aaa/Chart.yaml`` with ``Name: demo`` was a chart
    named ``demo`` to helm and nameless here, so it was not replaced by the verified
    ``demo`` archive and helm rendered it instead.
    """
    folded = {f.casefold(): f for f in fields}
    for key in doc:
        if isinstance(key, str) and key not in fields and key.casefold() in folded:
            raise ManifestError(
                f"{shown}: key {key!r} is read by helm as {folded[key.casefold()]!r}",
                reason="invalid-chart",
                found=key,
                expected=folded[key.casefold()],
                hint="spell chart metadata keys exactly as Helm documents them",
            )


def _load_metadata(data: bytes, shown: str) -> dict[str, Any]:
    docs = load_all(data, source=shown, max_bytes=_MAX_METADATA_BYTES)
    if len(docs) > 1:
        raise ManifestError(f"{shown}: more than one document", reason="invalid-chart")
    doc = docs[0] if docs else {}
    if isinstance(doc, dict):
        _check_spelling(doc, _METADATA_FIELDS, shown)
        entries = doc.get("dependencies")
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                _check_spelling(entry, _DEPENDENCY_FIELDS, f"{shown} dependencies")
    return doc


def _dependencies_from(meta: Mapping[str, Any], shown: str) -> list[Dependency]:
    entries = meta.get("dependencies")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ManifestError(
            f"{shown}: dependencies is not a list",
            reason="invalid-chart",
            found=type(entries).__name__,
            expected="a list of {name, version, repository}",
        )
    out = []
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ManifestError(
                f"{shown}: dependency {position} has no name",
                reason="invalid-chart",
                expected="a mapping with a string name",
            )
        repository = entry.get("repository") or ""
        version = entry.get("version") or ""
        if not isinstance(repository, str) or not isinstance(version, (str, int, float)):
            raise ManifestError(
                f"{shown}: dependency {entry['name']!r} has an invalid repository or version",
                reason="invalid-chart",
            )
        out.append(Dependency(entry["name"], str(version), repository.strip(), shown))
    return out


def chart_dependencies(files: Mapping[str, bytes], shown_prefix: str = "") -> list[Dependency]:
    """Dependencies declared by a chart's ``Chart.yaml`` and ``requirements.yaml``.

    ``files`` maps ``Chart.yaml`` / ``requirements.yaml`` to their bytes (absent
    keys: no such file). Helm reads ``requirements.yaml`` for any apiVersion
    (with a deprecation warning on v2), so both count.
    """
    out: list[Dependency] = []
    for name in ("Chart.yaml", "requirements.yaml"):
        data = files.get(name)
        if data is not None:
            shown = f"{shown_prefix}{name}"
            out.extend(_dependencies_from(_load_metadata(data, shown), shown))
    return out


def _chart_name(chart_yaml: bytes | None, shown: str) -> str | None:
    if chart_yaml is None:
        return None
    name = _load_metadata(chart_yaml, shown).get("name")
    return name if isinstance(name, str) else None


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


# --- archives ---------------------------------------------------------------------


def _gunzip(data: bytes, limit: int, shown: str) -> bytes:
    """Decompress (multi-member) gzip with a cap on the output, as Go's reader does."""
    out = bytearray()
    rest = data
    while rest:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise ManifestError(
                f"{shown} is not a gzip archive: {exc}", reason="chart-unreadable"
            ) from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise SizeLimitError(
                f"{shown} decompresses to more than {limit} bytes",
                reason="size-limit",
                expected=f"a chart archive of at most {limit} bytes decompressed",
            )
        if not decoder.eof:
            raise ManifestError(f"{shown} is a truncated gzip archive", reason="chart-unreadable")
        rest = decoder.unused_data
    return bytes(out)


def _archive_files(data: bytes, shown: str) -> dict[str, bytes]:
    """The files of a chart archive as helm's loader names them.

    Helm drops the first path component of every entry (whatever it is),
    turns backslashes into slashes and keeps the last of duplicate names.
    """
    raw = _gunzip(data, MAX_ARCHIVE_BYTES, shown)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                name = member.name.replace("\\", "/")
                parts = name.split("/")
                inner = "/".join(parts[1:])
                if not inner:
                    continue
                # helm path.Clean()s the name (red-team: "charts/inner/./Chart.yaml" hid
                # a subchart's remote dependencies from this inspection) and merges a
                # repeated Chart.yaml into one (a first copy's dependencies survive a
                # second one without): clean the same way, refuse repeated names.
                inner = posixpath.normpath(inner)
                if inner.startswith(("/", "../")) or inner in (".", ".."):
                    raise ManifestError(
                        f"{shown}: entry {member.name!r} leaves the chart",
                        reason="chart-unreadable",
                    )
                if inner in files:
                    raise ManifestError(
                        f"{shown}: entry {inner!r} appears twice", reason="chart-unreadable"
                    )
                handle = tar.extractfile(member)
                if handle is not None:
                    files[inner] = handle.read()
    except (tarfile.TarError, EOFError) as exc:
        raise ManifestError(
            f"{shown} is not a tar archive: {exc}", reason="chart-unreadable"
        ) from None
    return files


def _subcharts_in(files: Mapping[str, bytes]) -> dict[str, dict[str, bytes]]:
    """``charts/<x>/...`` directories and ``charts/<x>.tgz`` archives of an archive's files."""
    groups: dict[str, dict[str, bytes]] = {}
    for name, data in files.items():
        if not name.startswith("charts/") or name.endswith(".prov"):
            continue
        first, _, rest = name[len("charts/") :].partition("/")
        groups.setdefault(first, {})[rest] = data
    return groups


def _check_archive_tree(
    files: Mapping[str, bytes], shown: str, depth: int
) -> tuple[str | None, list[str]]:
    """(chart name, remote dependencies declared anywhere inside) of an unverified archive."""
    if depth > MAX_CHART_DEPTH:
        raise ManifestError(f"{shown}: subcharts nest too deep", reason="invalid-chart")
    name = _chart_name(files.get("Chart.yaml"), f"{shown}:Chart.yaml")
    remote = [
        f"{shown}: {dep.name} from {dep.repository}"
        for dep in chart_dependencies(files, f"{shown}:")
        if dep.is_remote
    ]
    for sub, sub_files in _subcharts_in(files).items():
        sub_shown = f"{shown}:charts/{sub}"
        if sub.endswith(".tgz"):
            data = sub_files.get("")
            if data is None:
                continue
            _, nested = _check_archive_tree(_archive_files(data, sub_shown), sub_shown, depth + 1)
        else:
            _, nested = _check_archive_tree(sub_files, sub_shown, depth + 1)
        remote.extend(nested)
    return name, remote


# --- staging ----------------------------------------------------------------------


@dataclass
class _Stager:
    root: Path  # the real source directory
    charts: tuple[VerifiedChart, ...]
    budget: _Budget = field(default_factory=_Budget)
    #: Verified archives written into the stage: never inspected or replaced again.
    placed: set[Path] = field(default_factory=set)

    def verified_for(self, dep: Dependency, shown: str) -> list[VerifiedChart]:
        candidates = [c for c in self.charts if c.name == dep.name]
        exact = [c for c in candidates if c.version == dep.version]
        chosen = exact or candidates
        if not chosen:
            raise ManifestError(
                f"{shown} declares dependency {dep.name!r} {dep.version} from "
                f"{dep.repository}, and no verified chart was given for it",
                reason="chart-unverified",
                found=f"{dep.name} {dep.version} from {dep.repository} (not verified)",
                expected="a chart whose provenance or signature the chart verifier checked",
                hint="add a charts rule to the policy that matches this repository, so the "
                "chart is fetched and verified; a copy vendored under charts/ is not enough",
            )
        return chosen

    def process(self, stage: Path, origin: Path, shown: str, depth: int) -> None:
        """Apply the dependency rules to the staged chart ``stage`` (a copy of ``origin``)."""
        if depth > MAX_CHART_DEPTH:
            raise ManifestError(f"{shown}: subcharts nest too deep", reason="invalid-chart")
        metadata = {
            name: (stage / name).read_bytes()
            for name in ("Chart.yaml", "requirements.yaml")
            if (stage / name).is_file()
        }
        deps = chart_dependencies(metadata, shown)
        charts_dir = stage / "charts"
        entries = self._identify(charts_dir, shown)
        replaced: set[str] = set()
        origins: dict[Path, Path] = {}
        for dep in deps:
            if dep.is_remote:
                chosen = self.verified_for(dep, f"{shown}{dep.declared_in}")
                if dep.name not in replaced:
                    self._remove(entries, dep.name)
                    replaced.add(dep.name)
                for chart in chosen:
                    self._place(charts_dir, chart)
            elif dep.is_file:
                if not _SAFE_NAME.match(dep.name):
                    raise ManifestError(
                        f"{shown}{dep.declared_in}: dependency name {dep.name!r} is not a "
                        "chart name",
                        reason="invalid-chart",
                    )
                target = self._file_target(dep, origin, shown)
                staged = charts_dir / dep.name
                if dep.name not in replaced:
                    self._remove(entries, dep.name)
                    replaced.add(dep.name)
                if staged.exists():
                    shutil.rmtree(staged)
                _copy_tree(target, staged, self.root, self.budget)
                origins[staged] = target
        # Local subcharts left in charts/: directories recurse, archives are inspected.
        if not charts_dir.is_dir():
            return
        for entry in sorted(charts_dir.iterdir()):
            if entry in self.placed:
                continue
            sub_shown = f"{shown}charts/{entry.name}/"
            if entry.is_dir():
                sub_origin = origins.get(entry, origin / "charts" / entry.name)
                self.process(entry, sub_origin, sub_shown, depth + 1)
            elif entry.name.endswith(".tgz"):
                archive_shown = f"{shown}charts/{entry.name}"
                _, remote = _check_archive_tree(
                    _archive_files(entry.read_bytes(), archive_shown), archive_shown, depth + 1
                )
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

    def _identify(self, charts_dir: Path, shown: str) -> list[tuple[Path, set[str]]]:
        """Every entry of ``charts/`` and the chart names helm could load from it."""
        out: list[tuple[Path, set[str]]] = []
        if not charts_dir.is_dir():
            return out
        for entry in sorted(charts_dir.iterdir()):
            if entry in self.placed:
                continue
            entry_shown = f"{shown}charts/{entry.name}"
            names: set[str] = set()
            if entry.is_dir():
                chart_yaml = entry / "Chart.yaml"
                name = _chart_name(
                    chart_yaml.read_bytes() if chart_yaml.is_file() else None,
                    f"{entry_shown}/Chart.yaml",
                )
                if name is not None:
                    names.add(name)
            elif entry.name.endswith(".tgz"):
                files = _archive_files(entry.read_bytes(), entry_shown)
                name = _chart_name(files.get("Chart.yaml"), f"{entry_shown}:Chart.yaml")
                if name is None:
                    raise ManifestError(
                        f"{entry_shown}: no chart name inside; cannot tell which dependency it is",
                        reason="chart-unreadable",
                        expected="an archive with <dir>/Chart.yaml and a name",
                    )
                names.add(name)
            else:
                continue
            # The file name counts too: it is what people (and helm dep build) go by.
            stem = entry.name.removesuffix(".tgz")
            names.add(stem)
            names.update(stem[: m.start()] for m in re.finditer(r"-(?=\d)", stem) if m.start() > 0)
            out.append((entry, names))
        return out

    def _remove(self, entries: list[tuple[Path, set[str]]], name: str) -> None:
        for path, names in entries:
            if name in names and (path.exists() or path.is_symlink()):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()

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

    def _file_target(self, dep: Dependency, origin: Path, shown: str) -> Path:
        relative = dep.repository[len("file://") :]
        target = Path(os.path.realpath(origin / relative))
        if target != self.root and self.root not in target.parents:
            raise ManifestError(
                f"{shown}{dep.declared_in}: dependency {dep.name!r} is "
                f"{dep.repository}, outside the source directory",
                reason="dependency-outside-source",
                found=str(target),
                expected=f"a directory inside {self.root}",
                hint="vendor the chart into the source (charts/) or publish and verify it",
            )
        if not (target / "Chart.yaml").is_file():
            raise ManifestError(
                f"{shown}{dep.declared_in}: dependency {dep.name!r} ({dep.repository}) is "
                "not a chart directory",
                reason="invalid-chart",
                found=str(target),
                expected="a directory with a Chart.yaml",
            )
        return target


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
    _copy_tree(root, stage, root, stager.budget, skip_git=True)
    if not (stage / "Chart.yaml").is_file():
        raise ManifestError(
            f"{source_dir} has no Chart.yaml", reason="invalid-chart", expected="a Helm chart"
        )
    stager.process(stage, root, "", 0)
    inputs = [name for name in ("Chart.yaml", "requirements.yaml", "values.yaml")]
    inputs = [name for name in inputs if (stage / name).is_file()]
    return StagedChart(
        chart_dir=stage,
        values_files=tuple(values),
        inputs=tuple(sorted(set(inputs) | set(values_shown), key=lambda p: PurePosixPath(p).parts)),
    )
