"""Kustomize: ``kubectl kustomize`` (or ``kustomize build``), offline and root-bound.

Remote bases are refused before kustomize runs (``remote-base``): a
``resources: [github.com/org/repo//base?ref=main]`` entry would render
whatever that branch holds *now*, which nobody signed, and fetching it would
let a source make the gate's host reach any URL. Every kustomization the
overlay reaches (its local bases and components, also outside the source
directory) and every kustomization under the source directory is read
strictly and checked: ``resources``, ``bases``, ``components``, ``crds``,
``configurations``, ``generators``, ``transformers``, ``validators``,
``patchesStrategicMerge``, ``patches[].path``, ``patchesJson6902[].path``,
``openapi.path``, ``replacements[].path``, the generators' ``files``/``envs``/``env``,
and the builtin plugin configs that ``generators``/``transformers``/``validators``
name (inline, in files, or as a directory's ``resources``): their ``path``,
``paths``, ``files``, ``envs``, ... (Go never proxies loopback, so the offline
proxies below do not stop an ``http://127.0.0.1/...`` load).

Behind that check, kustomize runs with:

* ``--load-restrictor=LoadRestrictionsRootOnly`` (patches and files must stay
  under their kustomization's directory);
* no ``--enable-helm``, ``--enable-alpha-plugins`` or ``--enable-exec``, so
  ``helmCharts`` and exec/container plugins fail instead of running;
* ``git`` allowed no transport at all (``GIT_ALLOW_PROTOCOL``), and HTTP(S)
  proxies pointing at a closed local port, so a remote reference the check
  missed fails instead of fetching.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gate.errors import ManifestError, RenderError, SourceError
from gate.render.base import Rendered, RenderRequest
from gate.render.plain import ensure_inside
from gate.render.process import run_tool
from gate.yamlstrict import load_all

__all__ = [
    "KUSTOMIZATION_NAMES",
    "KustomizeRenderer",
    "check_no_remote_bases",
    "is_remote",
]

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
#: A kustomization file is small; a huge one is not a kustomization.
_MAX_KUSTOMIZATION_BYTES = 1024 * 1024
_MAX_KUSTOMIZATIONS = 1000

# What kustomize (v5 repospec / remote-file loader) treats as remote: any URL
# scheme (https://, ssh://, file://), go-getter ``git::``, scp-like
# ``git@host:``, the ``gh:`` shorthand and bare well-known hosts; a local
# path never needs a ``?ref=`` query or a ``//`` repository/subdir separator.
_REMOTE = re.compile(
    r"^\s*(?:[a-z][a-z0-9+.-]*://|git::|[\w.-]+@[\w.-]+:|gh:|"
    r"(?:github\.com|gitlab\.com|bitbucket\.org|ssh\.dev\.azure\.com|dev\.azure\.com)(?:[/:]|$))"
    r"|\?(?:ref|version|timeout|submodules)=|.//",
    re.IGNORECASE,
)

# Environment for the tool: defence in depth behind the static check.
_OFFLINE_ENV = {
    "GIT_ALLOW_PROTOCOL": "none",  # no transport is allowed: no clone of anything
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "HTTP_PROXY": "http://127.0.0.1:9",  # discard port: connections are refused
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "ALL_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}

_PATH_LIST_FIELDS = (
    "resources",
    "bases",
    "components",
    "crds",
    "configurations",
    "generators",
    "transformers",
    "validators",
    "patchesStrategicMerge",
)
# Fields whose local entries may be directories with their own kustomization.
_DIRECTORY_FIELDS = ("resources", "bases", "components", "generators", "transformers", "validators")


def is_remote(reference: str) -> bool:
    """Does kustomize read ``reference`` from the network (or a git clone)?"""
    return bool(_REMOTE.search(reference))


def kustomization_file(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _references(kustomization: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, path-or-URL) for every entry that kustomize loads from somewhere."""
    for field in _PATH_LIST_FIELDS:
        entries = kustomization.get(field)
        if isinstance(entries, str):
            entries = [entries]
        if not isinstance(entries, list):
            continue
        for entry in entries:
            # Multi-line strings are inline patches / plugin configs, not paths.
            if isinstance(entry, str) and "\n" not in entry:
                yield field, entry
            elif isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield field, entry["path"]
    for field in ("patches", "patchesJson6902", "replacements"):
        entries = kustomization.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                yield field, entry["path"]
    openapi = kustomization.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield "openapi", openapi["path"]
    for field in ("configMapGenerator", "secretGenerator"):
        generators = kustomization.get(field)
        for generator in generators if isinstance(generators, list) else []:
            if not isinstance(generator, dict):
                continue
            sources = [generator.get("env")]
            for key in ("files", "envs"):
                values = generator.get(key)
                sources.extend(values if isinstance(values, list) else [])
            for source in sources:
                if isinstance(source, str):
                    # ``key=path`` names the data key; the path follows ``=``.
                    yield field, source.split("=", 1)[-1]


# Keys under which kustomize's builtin plugins (PatchTransformer, ConfigMapGenerator,
# ReplacementTransformer, ...) name something to load: a local path or an http(s) URL.
_PLUGIN_LOAD_KEYS = frozenset(
    {"path", "paths", "files", "envs", "env", "resources", "valuesFile", "additionalValuesFiles"}
)
_PLUGIN_FIELDS = ("generators", "transformers", "validators")


def _plugin_load_references(node: Any) -> Iterator[str]:
    """Every string a builtin plugin config may load, wherever it sits in the config."""
    if isinstance(node, list):
        for item in node:
            yield from _plugin_load_references(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _PLUGIN_LOAD_KEYS:
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str) and "\n" not in item:
                        yield item.split("=", 1)[-1]  # ``key=path`` in generator files
            if isinstance(value, dict | list):
                yield from _plugin_load_references(value)


def _plugin_configs(
    kustomization: dict[str, Any], directory: Path, shown: str
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, document) of the plugin configs in ``generators``/``transformers``/``validators``.

    Inline (multi-line) entries and local files; directories are followed as
    kustomizations by the caller, whose ``resources`` are then configs too.
    """
    for field in _PLUGIN_FIELDS:
        entries = kustomization.get(field)
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, str) and "\n" in entry:
                for doc in load_all(entry, source=f"{shown} {field} (inline)"):
                    yield f"{shown} {field} (inline)", doc
            elif isinstance(entry, str) and not is_remote(entry):
                for doc in _load_config_file(directory / entry, f"{shown} {field} {entry}"):
                    yield f"{shown} {field} {entry}", doc


def _load_config_file(path: Path, shown: str) -> list[dict[str, Any]]:
    """A local plugin config file's documents ([] for a directory or a missing file)."""
    if not path.is_file():  # also no FIFO: it would block the read
        return []
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KUSTOMIZATION_BYTES + 1)
    except OSError as exc:
        raise RenderError(f"cannot read {shown}: {exc.strerror or exc}") from None
    return load_all(data, source=shown, max_bytes=_MAX_KUSTOMIZATION_BYTES)


def _refuse_remote(shown: str, field: str, reference: str) -> ManifestError:
    return ManifestError(
        f"{shown}: {field} entry {reference!r} is remote; remote bases are refused",
        reason="remote-base",
        found=reference,
        expected="a path inside the signed repository",
        hint="vendor the base into the repository (or a signed chart) and refer "
        "to it by a relative path",
    )


def _load_kustomization(path: Path, shown: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_KUSTOMIZATION_BYTES + 1)
    except OSError as exc:
        raise RenderError(f"cannot read {shown}: {exc.strerror or exc}") from None
    docs = load_all(data, source=shown, max_bytes=_MAX_KUSTOMIZATION_BYTES)
    if len(docs) > 1:
        raise ManifestError(f"{shown}: more than one document", reason="invalid-kustomization")
    return docs[0] if docs else {}


def check_no_remote_bases(source_dir: Path, checkout_root: Path | None = None) -> tuple[str, ...]:
    """Refuse remote references in every kustomization reachable from ``source_dir``.

    With ``checkout_root``, every base or component must also lie inside it: a
    ``../../../other-app`` base would render files no Git signature covers (and, in
    Argo CD's repo-server, another repository's checkout).

    Returns the kustomization files read, relative to ``source_dir`` (POSIX).
    """
    root = source_dir.resolve(strict=True)
    confine = checkout_root.resolve() if checkout_root is not None else None
    pending: list[Path] = [root]
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if Path(dirpath) != root and kustomization_file(Path(dirpath)) is not None:
            pending.append(Path(dirpath))
    seen: set[Path] = set()
    files: list[str] = []
    # Kustomization directories named by generators/transformers/validators: their
    # ``resources`` are plugin configs, read like the configs named directly.
    plugin_dirs: set[Path] = set()
    while pending:
        directory = pending.pop(0)
        if directory in seen:
            continue
        seen.add(directory)
        if len(seen) > _MAX_KUSTOMIZATIONS:
            raise ManifestError(
                f"more than {_MAX_KUSTOMIZATIONS} kustomizations", reason="invalid-kustomization"
            )
        path = kustomization_file(directory)
        if path is None:
            continue
        if root == directory or root in directory.parents:
            ensure_inside(path, root)
        shown = os.path.relpath(path, root).replace(os.sep, "/")
        files.append(shown)
        kustomization = _load_kustomization(path, shown)
        for field, reference in _references(kustomization):
            if is_remote(reference):
                raise _refuse_remote(shown, field, reference)
            if field in _DIRECTORY_FIELDS:
                target = Path(os.path.realpath(directory / reference))
                if confine is not None and target != confine and confine not in target.parents:
                    raise ManifestError(
                        f"{shown}: {field} entry {reference!r} lies outside the checkout",
                        reason="path-outside-checkout",
                        found=str(target),
                        expected=f"a path inside {confine}",
                        hint="keep bases and components inside the repository that is verified",
                    )
                if target.is_dir():
                    pending.append(target)
                    if field in _PLUGIN_FIELDS or directory in plugin_dirs:
                        plugin_dirs.add(target)
        # Red-team finding (tests/redteam/test_kustomize_remote_plugin_configs.py):
        # builtin plugin configs load paths too (PatchTransformer ``path``,
        # ConfigMapGenerator ``files``, ...), and kustomize fetches http(s) ones; Go
        # never proxies loopback, so the offline proxies did not stop them. Read the
        # configs (inline, in files, in plugin directories' resources) and refuse.
        configs = list(_plugin_configs(kustomization, directory, shown))
        if directory in plugin_dirs:
            resources = kustomization.get("resources")
            for entry in resources if isinstance(resources, list) else []:
                if isinstance(entry, str) and not is_remote(entry):
                    where = f"{shown} resources {entry}"
                    configs.extend((where, d) for d in _load_config_file(directory / entry, where))
        for where, config in configs:
            for reference in _plugin_load_references(config):
                if is_remote(reference):
                    raise _refuse_remote(where, "plugin config", reference)
    return tuple(sorted(files))


def _command(root: Path, tool: Path | None) -> list[str]:
    restrictor = "--load-restrictor=LoadRestrictionsRootOnly"
    if tool is not None:
        if tool.name.startswith("kustomize"):
            return [str(tool), "build", str(root), restrictor]
        return [str(tool), "kustomize", str(root), restrictor]
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize", str(root), restrictor]
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build", str(root), restrictor]
    raise RenderError(
        "neither kubectl nor kustomize is on PATH; cannot render a kustomization",
        reason="renderer-unavailable",
        hint="install kubectl (it has kustomize built in): scripts/bootstrap.sh",
    )


class KustomizeRenderer:
    """Renders a kustomization; ``tool`` is kubectl or kustomize (default: from PATH)."""

    name: str = "kustomize"

    def __init__(self, tool: Path | None = None) -> None:
        self.tool = tool

    def render(self, request: RenderRequest) -> Rendered:
        try:
            root = request.source_dir.resolve(strict=True)
        except OSError as exc:
            raise SourceError(
                f"cannot read source {request.source_dir}: {exc.strerror or exc}",
                reason="source-unreadable",
            ) from None
        files = check_no_remote_bases(root, request.checkout_root)
        output = run_tool(
            _command(root, self.tool),
            cwd=root,
            timeout_s=request.timeout_s,
            max_output_bytes=request.max_output_bytes,
            env_extra=_OFFLINE_ENV,
        )
        documents = load_all(
            output,
            source=f"kustomize output of {request.source_dir}",
            max_bytes=request.max_output_bytes,
        )
        return Rendered(documents=documents, renderer=self.name, files=files)
