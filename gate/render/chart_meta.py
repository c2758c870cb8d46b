"""The one reader of chart metadata: what helm will load, read once, strictly.

The chart verifier (``gate.charts``: which remote dependencies to fetch and
verify) and the renderer's stager (``gate.render.helm_stage``: which remote
dependencies must be replaced by verified archives) both read the source chart
through :func:`read_chart_tree`, so they cannot disagree about it. Red-team
findings that came from two readers: Go's case-insensitive JSON keys
(``Name: demo`` names a chart ``demo`` to helm), archive entry names that helm
``path.Clean``s, a repeated ``Chart.yaml`` that helm merges, different depth
limits (8 and 16), and symlinked metadata files that the verifier read before
the renderer refused them.

What is read, per chart directory (the source, local subcharts under
``charts/``, ``file://`` dependencies inside the source) and per vendored
archive (``charts/*.tgz``, also inside archives), as helm's loader reads it:

* ``Chart.yaml``: one mapping with string ``name`` and ``version``;
  ``requirements.yaml`` (read whatever the ``apiVersion``): helm unmarshals it
  *into the chart metadata*, so any key but ``dependencies`` (``name:``
  renames the chart) is refused; ``Chart.lock`` / ``requirements.lock``:
  ``dependencies`` entries (the verifier pins versions from them);
* a key helm would read under another spelling (Go's ``encoding/json`` matches
  keys case-insensitively, with Unicode folding: ``Name``, ``NAME``,
  ``Dependencies``, a long s) is refused (``invalid-chart``), at the top level
  and in dependency entries;
* dependency ``name`` must be a chart name; ``version``, ``repository``,
  ``alias``, ``condition`` strings (or absent);
* every path read must resolve inside the source before it is opened
  (``symlink-escape``); a symlinked subchart that contains itself is a
  ``symlink-loop``; metadata files must be regular files of at most 1 MiB;
* ``file://`` dependencies must resolve inside the source
  (``dependency-outside-source``), where their chart is read (the stager
  refuses a target that is not a chart directory);
* archive entries are named as helm names them (first path component dropped,
  ``\\`` as the separator when present, ``path.Clean``); an entry that leaves
  the chart, an entry that is not a regular file or directory and a name that
  appears twice (helm would merge the copies) are refused
  (``chart-unreadable``); decompression is capped at 100 MiB;
* ``charts/`` entries whose name starts with ``_`` or ``.`` are skipped (helm
  skips them); a subchart directory without ``Chart.yaml`` is refused (helm
  refuses it too); other plain files are not charts;
* subcharts nest at most :data:`MAX_CHART_DEPTH` levels, and a tree holds at
  most :data:`MAX_CHARTS` charts.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import posixpath
import re
import stat
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gate.errors import GateError, ManifestError, RenderError, SizeLimitError
from gate.render.plain import ensure_inside
from gate.yamlstrict import load_all

__all__ = [
    "MAX_CHARTS",
    "MAX_CHART_DEPTH",
    "ChartDependency",
    "ChartMetadataError",
    "ChartNode",
    "Subchart",
    "is_remote_repository",
    "read_chart_tree",
]

#: How deep subcharts may nest (the source chart is level 0), for the verifier and
#: the renderer alike.
MAX_CHART_DEPTH = 8
#: Charts (directories and archives) one tree may hold.
MAX_CHARTS = 1000
MAX_METADATA_BYTES = 1024 * 1024
#: A vendored archive, compressed and decompressed (helm's own default cap on a
#: decompressed chart is 100 MiB).
MAX_ARCHIVE_BYTES = 100 * 1024 * 1024
#: The metadata files of a chart, in the order helm's loader applies them.
METADATA_FILES = ("Chart.yaml", "Chart.lock", "requirements.lock", "requirements.yaml")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_DRIVE = re.compile(r"[A-Za-z]:/")
_BOM = b"\xef\xbb\xbf"

#: Fields helm reads from Chart.yaml (chart.Metadata), a dependency entry
#: (chart.Dependency) and a lock (chart.Lock), by their JSON names.
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
_LOCK_FIELDS = frozenset(["generated", "digest", "dependencies"])
#: A lock entry: helm's fields and the gate's per-entry ``digest``.
_LOCK_ENTRY_FIELDS = _DEPENDENCY_FIELDS | {"digest"}


class ChartMetadataError(ManifestError):
    """Chart metadata the gate will not read as anything but a refusal."""

    reason = "invalid-chart"


def is_remote_repository(repository: str) -> bool:
    """Is a dependency with this ``repository`` fetched from somewhere?

    Empty means "vendored under charts/", ``file://`` a local directory;
    anything else (``https://``, ``http://``, ``oci://``, ``@name``,
    ``alias:name``, a bare repository name) names a remote repository.
    """
    repository = repository.strip()
    return bool(repository) and not repository.startswith("file://")


@dataclass(frozen=True)
class ChartDependency:
    """One entry of ``dependencies`` (Chart.yaml or requirements.yaml)."""

    name: str
    version: str  # "" when absent
    repository: str  # stripped; "" when absent
    alias: str | None
    condition: str | None
    declared_in: str  # e.g. "charts/backend/Chart.yaml", for messages
    #: The chart a ``file://`` dependency names (a directory inside the source); None
    #: when there is no Chart.yaml there.
    chart: ChartNode | None = None

    @property
    def is_file(self) -> bool:
        return self.repository.startswith("file://")

    @property
    def is_remote(self) -> bool:
        return is_remote_repository(self.repository)


@dataclass(frozen=True)
class Subchart:
    """An entry of a chart's ``charts/``: a directory or a ``.tgz`` archive."""

    entry: str  # its name under charts/
    node: ChartNode


@dataclass(frozen=True)
class ChartNode:
    """A chart: a directory of the source, or a vendored archive."""

    shown: str  # message prefix: "" (the source), "charts/x/", "charts/x.tgz:"
    depth: int
    name: str
    version: str
    dependencies: tuple[ChartDependency, ...]
    #: Entries of Chart.lock and requirements.lock (None: neither exists).
    lock: tuple[Mapping[str, Any], ...] | None
    lock_shown: str
    subcharts: tuple[Subchart, ...]
    #: The real directory (None for an archive).
    path: Path | None
    #: The metadata files as read (name -> bytes), to check a copy against.
    files: Mapping[str, bytes] = field(default_factory=dict)
    #: ``sha256:<hex>`` of the archive's bytes (archives only).
    digest: str | None = None

    @property
    def is_archive(self) -> bool:
        return self.path is None

    def charts(self) -> Iterator[ChartNode]:
        """This chart and every chart below it (subcharts, ``file://`` charts), depth first."""
        yield self
        for sub in self.subcharts:
            yield from sub.node.charts()
        for dep in self.dependencies:
            if dep.chart is not None:
                yield from dep.chart.charts()


def read_chart_tree(source_dir: Path) -> ChartNode | None:
    """The chart in ``source_dir`` with everything below it; ``None`` when there is no
    ``Chart.yaml``. Raises ``ManifestError`` (``invalid-chart``, ``chart-unreadable``,
    ``symlink-escape``, ``symlink-loop``, ``dependency-outside-source``,
    ``not-a-regular-file``), ``SizeLimitError`` or ``RenderError``."""
    root = Path(os.path.realpath(source_dir))
    reader = _Reader(root)
    if reader.read_file(root / "Chart.yaml", "Chart.yaml") is None:
        return None
    return reader.directory(root, "", 0, frozenset([root]))


# --- parsing ---------------------------------------------------------------------------


def _check_spelling(doc: Mapping[str, Any], fields: frozenset[str], shown: str) -> None:
    """Refuse a key that helm would read as one of ``fields`` under another spelling.

    helm decodes chart metadata with Go's encoding/json, which matches keys
    case-insensitively (with Unicode folding: ``Name``, ``NAME``, a long s for s).
    Red-team: a vendored ``charts/aaa/Chart.yaml`` with ``Name: demo`` was a chart
    named ``demo`` to helm and nameless to the gate.
    """
    folded = {f.casefold(): f for f in fields}
    for key in doc:
        if isinstance(key, str) and key not in fields and key.casefold() in folded:
            raise ChartMetadataError(
                f"{shown}: key {key!r} is read by helm as {folded[key.casefold()]!r}",
                found=key,
                expected=folded[key.casefold()],
                hint="spell chart metadata keys exactly as Helm documents them",
            )


def _load_mapping(data: bytes, shown: str) -> dict[str, Any]:
    """One strict YAML mapping (duplicate keys, aliases and size bounded)."""
    try:
        docs = load_all(data, source=shown, max_bytes=MAX_METADATA_BYTES)
        # Safe after the strict pass; only to see the top level as helm does (the
        # strict loader flattens a List object, which would hide the real keys).
        top = yaml.safe_load(data)
    except SizeLimitError:
        raise
    except GateError as exc:
        raise ChartMetadataError(f"{shown} is not valid YAML", found=exc.message) from None
    except yaml.YAMLError as exc:  # pragma: no cover - the strict pass comes first
        raise ChartMetadataError(f"{shown} is not valid YAML: {exc}") from None
    if len(docs) != 1 or not isinstance(top, dict) or "items" in top:
        raise ChartMetadataError(f"{shown} is not one YAML mapping")
    return docs[0]


def _entries(doc: Mapping[str, Any], shown: str, fields: frozenset[str]) -> list[dict[str, Any]]:
    entries = doc.get("dependencies")
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ChartMetadataError(
            f"{shown}: dependencies is not a list of mappings",
            found=type(entries).__name__,
            expected="a list of {name, version, repository}",
        )
    for entry in entries:
        _check_spelling(entry, fields, f"{shown} dependencies")
    return entries


def _optional_text(entry: Mapping[str, Any], key: str, shown: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ChartMetadataError(
            f"{shown}: dependency {entry.get('name')!r} has a {key} that is not a string",
            found=repr(value)[:80],
            expected="a string",
        )
    return value


def _dependencies(doc: Mapping[str, Any], shown: str) -> list[ChartDependency]:
    out = []
    for position, entry in enumerate(_entries(doc, shown, _DEPENDENCY_FIELDS)):
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ChartMetadataError(
                f"{shown}: dependency {position} has no chart name",
                found=repr(name)[:80],
                expected="a string of letters, digits, '.', '_' and '-'",
            )
        out.append(
            ChartDependency(
                name=name,
                version=_optional_text(entry, "version", shown) or "",
                repository=(_optional_text(entry, "repository", shown) or "").strip(),
                alias=_optional_text(entry, "alias", shown),
                condition=_optional_text(entry, "condition", shown),
                declared_in=shown,
            )
        )
    return out


@dataclass(frozen=True)
class _Parsed:
    name: str
    version: str
    dependencies: list[ChartDependency]
    lock: tuple[Mapping[str, Any], ...] | None
    lock_shown: str


def _parse(files: Mapping[str, bytes], shown: str) -> _Parsed:
    chart_shown = f"{shown}Chart.yaml"
    meta = _load_mapping(files["Chart.yaml"], chart_shown)
    _check_spelling(meta, _METADATA_FIELDS, chart_shown)
    for key in ("name", "version"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise ChartMetadataError(f"{chart_shown} has no string {key!r}")
    deps = _dependencies(meta, chart_shown)
    if "requirements.yaml" in files:
        req_shown = f"{shown}requirements.yaml"
        req = _load_mapping(files["requirements.yaml"], req_shown)
        _check_spelling(req, _METADATA_FIELDS, req_shown)
        other = sorted(str(k) for k in req if k != "dependencies")
        if other:
            # helm unmarshals requirements.yaml into the chart's metadata: a name
            # there renames the chart (checked with helm 4).
            raise ChartMetadataError(
                f"{req_shown}: {', '.join(other)} would override Chart.yaml",
                found=other[0],
                expected="only dependencies",
                hint="keep chart metadata in Chart.yaml",
            )
        deps += _dependencies(req, req_shown)
    lock: tuple[Mapping[str, Any], ...] | None = None
    lock_shown = f"{shown}Chart.lock"
    for lock_name in ("Chart.lock", "requirements.lock"):
        if lock_name in files:
            lock_shown = f"{shown}{lock_name}"
            doc = _load_mapping(files[lock_name], lock_shown)
            _check_spelling(doc, _LOCK_FIELDS, lock_shown)
            lock = (*(lock or ()), *_entries(doc, lock_shown, _LOCK_ENTRY_FIELDS))
    return _Parsed(meta["name"], meta["version"], deps, lock, lock_shown)


# --- archives --------------------------------------------------------------------------


def _unreadable(message: str) -> ManifestError:
    return ManifestError(message, reason="chart-unreadable")


def _gunzip(data: bytes, limit: int, shown: str) -> bytes:
    """Decompress (multi-member) gzip with a cap on the output, as Go's reader does."""
    out = bytearray()
    rest = data
    while rest:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise _unreadable(f"{shown} is not a gzip archive: {exc}") from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise SizeLimitError(
                f"{shown} decompresses to more than {limit} bytes",
                reason="size-limit",
                expected=f"a chart archive of at most {limit} bytes decompressed",
            )
        if not decoder.eof:
            raise _unreadable(f"{shown} is a truncated gzip archive")
        rest = decoder.unused_data
    return bytes(out)


def _helm_entry_name(raw: str, shown: str) -> str:
    """An archive entry's name as helm's loader (``LoadArchive``) makes it."""
    delimiter = "\\" if "\\" in raw else "/"
    name = delimiter.join(raw.split(delimiter)[1:]).replace(delimiter, "/")
    if name.startswith("/"):
        raise _unreadable(f"{shown}: entry {raw!r} is an absolute path")
    name = posixpath.normpath(name) if name else "."
    if name == "." or name.startswith("..") or _DRIVE.match(name):
        raise _unreadable(f"{shown}: entry {raw!r} leaves the chart")
    if raw.split(delimiter)[0] == "Chart.yaml":
        raise _unreadable(f"{shown}: Chart.yaml is not in the archive's directory")
    return name


def _archive_files(data: bytes, shown: str) -> dict[str, bytes]:
    """The files of a chart archive as helm's loader names them; a repeated name (which
    helm would merge: red-team, a second ``Chart.yaml`` without the first one's
    dependencies) is refused."""
    raw = _gunzip(data, MAX_ARCHIVE_BYTES, shown)
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isreg():
                    raise _unreadable(f"{shown}: entry {member.name!r} is not a regular file")
                name = _helm_entry_name(member.name, shown)
                if name in files:
                    raise _unreadable(f"{shown}: entry {name!r} appears twice")
                handle = tar.extractfile(member)
                files[name] = handle.read().removeprefix(_BOM) if handle is not None else b""
    except (tarfile.TarError, EOFError) as exc:
        raise _unreadable(f"{shown} is not a tar archive: {exc}") from None
    return files


def _skipped(entry: str) -> bool:
    """helm's loader skips ``charts/`` entries whose name starts with ``_`` or ``.``."""
    return entry.startswith(("_", "."))


# --- the reader ------------------------------------------------------------------------


@dataclass
class _Reader:
    root: Path
    charts: int = 0

    def _count(self, shown: str, depth: int) -> None:
        if depth > MAX_CHART_DEPTH:
            raise ChartMetadataError(
                f"{shown or './'}: subcharts nest more than {MAX_CHART_DEPTH} levels deep",
                found=f"level {depth}",
                expected=f"at most {MAX_CHART_DEPTH} levels of charts/ (or file://) below "
                "the source chart",
            )
        self.charts += 1
        if self.charts > MAX_CHARTS:
            raise SizeLimitError(
                f"the chart holds more than {MAX_CHARTS} subcharts (at {shown})",
                reason="size-limit",
            )

    def read_file(self, path: Path, shown: str, limit: int = MAX_METADATA_BYTES) -> bytes | None:
        """A regular file inside the source (``None``: no such file); refused before it is
        opened when it is a symlink that leaves the source."""
        if not os.path.lexists(path):
            return None
        real = ensure_inside(path, self.root)
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise RenderError(f"{shown} is a dangling symlink", reason="render-failed") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # replaced by a symlink since realpath
                raise RenderError(f"{shown} changed while it was read") from None
            raise RenderError(f"cannot read {shown}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ManifestError(
                    f"{shown} is not a regular file",
                    reason="not-a-regular-file",
                    found=stat.filemode(mode),
                    expected="a regular file",
                )
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise SizeLimitError(
                f"{shown} is larger than {limit} bytes",
                reason="size-limit",
                expected=f"at most {limit} bytes",
            )
        return data

    def directory(
        self, real: Path, shown: str, depth: int, ancestors: frozenset[Path]
    ) -> ChartNode:
        """The chart in the real directory ``real`` (inside the source)."""
        self._count(shown, depth)
        files: dict[str, bytes] = {}
        for name in METADATA_FILES:
            data = self.read_file(real / name, f"{shown}{name}")
            if data is not None:
                files[name] = data
        if "Chart.yaml" not in files:
            raise ChartMetadataError(
                f"{shown or './'}: no Chart.yaml; helm cannot load this as a chart",
                expected="a chart directory with a Chart.yaml",
            )
        parsed = _parse(files, shown)
        deps = [
            self._file_chart(d, real, shown, depth) if d.is_file else d for d in parsed.dependencies
        ]
        subcharts: list[Subchart] = []
        charts = real / "charts"
        if os.path.lexists(charts):
            charts_real = ensure_inside(charts, self.root)
            if charts_real.is_dir():
                for entry in sorted(os.listdir(charts_real)):
                    if _skipped(entry):
                        continue
                    node = self._entry(
                        charts_real / entry, f"{shown}charts/{entry}", depth, ancestors
                    )
                    if node is not None:
                        subcharts.append(Subchart(entry, node))
        return ChartNode(
            shown=shown,
            depth=depth,
            name=parsed.name,
            version=parsed.version,
            dependencies=tuple(deps),
            lock=parsed.lock,
            lock_shown=parsed.lock_shown,
            subcharts=tuple(subcharts),
            path=real,
            files=files,
        )

    def _entry(
        self, path: Path, shown: str, depth: int, ancestors: frozenset[Path]
    ) -> ChartNode | None:
        real = ensure_inside(path, self.root)
        if real.is_dir():
            if real in ancestors:
                raise ManifestError(
                    f"{shown} is a symlink to a directory that contains it",
                    reason="symlink-loop",
                    found=str(real),
                    expected="a symlink to a file or to a directory outside its own path",
                    hint="replace the symlink with the files themselves",
                )
            return self.directory(real, f"{shown}/", depth + 1, ancestors | {real})
        if not shown.endswith(".tgz"):
            return None  # helm does not load it as a chart (and fails on it)
        data = self.read_file(path, shown, MAX_ARCHIVE_BYTES)
        if data is None:  # pragma: no cover - lexists said it is there
            return None
        return self.archive(data, f"{shown}:", depth + 1)

    def _file_chart(
        self, dep: ChartDependency, real: Path, shown: str, depth: int
    ) -> ChartDependency:
        target = Path(os.path.realpath(real / dep.repository[len("file://") :]))
        if target != self.root and self.root not in target.parents:
            raise ManifestError(
                f"{dep.declared_in}: dependency {dep.name!r} is {dep.repository}, outside the "
                "source directory",
                reason="dependency-outside-source",
                found=str(target),
                expected=f"a directory inside {self.root}",
                hint="vendor the chart into the source (charts/) or publish and verify it",
            )
        if not (target / "Chart.yaml").is_file():
            return dep  # nothing to read: the stager refuses it (helm dep build would)
        relative = target.relative_to(self.root).as_posix()
        node = self.directory(
            target, "" if relative == "." else f"{relative}/", depth + 1, frozenset([target])
        )
        return replace(dep, chart=node)

    def archive(self, data: bytes, shown: str, depth: int) -> ChartNode:
        """A vendored archive (``shown`` ends with ``:``)."""
        self._count(shown, depth)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return self._archive_chart(
            _archive_files(data, shown.removesuffix(":")), shown, depth, digest
        )

    def _archive_chart(
        self, files: Mapping[str, bytes], shown: str, depth: int, digest: str | None
    ) -> ChartNode:
        if "Chart.yaml" not in files:
            raise _unreadable(f"{shown}Chart.yaml: missing; helm cannot load this as a chart")
        meta = {name: files[name] for name in METADATA_FILES if name in files}
        for name, data in meta.items():
            if len(data) > MAX_METADATA_BYTES:
                raise SizeLimitError(f"{shown}{name} is larger than {MAX_METADATA_BYTES} bytes")
        parsed = _parse(meta, shown)
        groups: dict[str, dict[str, bytes]] = {}
        for name, data in files.items():
            if not name.startswith("charts/") or name.endswith(".prov"):
                continue
            first, _, rest = name[len("charts/") :].partition("/")
            groups.setdefault(first, {})[rest] = data
        subcharts: list[Subchart] = []
        for entry, group in sorted(groups.items()):
            if _skipped(entry):
                continue
            sub_shown = f"{shown}charts/{entry}"
            if entry.endswith(".tgz"):
                if set(group) != {""}:
                    raise _unreadable(f"{sub_shown} is both an archive and a directory")
                self._count(f"{sub_shown}:", depth + 1)
                sub_digest = "sha256:" + hashlib.sha256(group[""]).hexdigest()
                node = self._archive_chart(
                    _archive_files(group[""], sub_shown), f"{sub_shown}:", depth + 1, sub_digest
                )
            else:
                # A plain file charts/<x> is not loaded as a chart (helm skips it).
                inner = {rest: data for rest, data in group.items() if rest}
                if not inner:
                    continue
                self._count(f"{sub_shown}/", depth + 1)
                node = self._archive_chart(inner, f"{sub_shown}/", depth + 1, None)
            subcharts.append(Subchart(entry, node))
        return ChartNode(
            shown=shown,
            depth=depth,
            name=parsed.name,
            version=parsed.version,
            dependencies=tuple(parsed.dependencies),
            lock=parsed.lock,
            lock_shown=parsed.lock_shown,
            subcharts=tuple(subcharts),
            path=None,
            files=meta,
            digest=digest,
        )
