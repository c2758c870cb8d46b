"""Strict, bounded YAML for rendered Kubernetes manifests.

The gate decides on what *it* parsed, and Argo CD / kubectl apply what *they*
parse. Every place where two YAML parsers can disagree is therefore a way to
show the gate one image and the cluster another. This loader closes those
places instead of picking a winner:

* duplicate mapping keys (``image:`` twice: PyYAML keeps the last, some
  parsers the first, some refuse) are a ``ManifestError`` (``duplicate-key``);
  keys are compared both by value (``1`` and ``0x1``, ``yes`` and ``true``) and
  by spelling (``1`` and ``"1"``, which Kubernetes turns into the same string);
* aliases are bounded before anything is constructed: the node graph is walked
  once with memoisation, so a billion-laughs document (``alias-limit``) fails
  in microseconds without expanding anything; recursive aliases are refused;
* only plain JSON-like data: null, bool, int, float, str, lists and mappings.
  Python tags, ``!!binary``, ``!!set``, ``!!timestamp`` and custom tags are
  ``unsupported-tag``. Timestamps are *not* resolved implicitly: Kubernetes
  keeps ``2024-01-01`` a string, so we do too;
* YAML 1.1 merge keys (``<<``) are applied with their defined precedence
  (explicit keys win over merged ones, earlier merge sources over later ones);
  two ``<<`` keys in one mapping, or a key written twice explicitly, are still
  duplicates;
* a total input size cap (``SizeLimitError``) and a nesting depth cap, so the
  recursive code downstream (extraction, pinning, dumping) cannot be exhausted.

Objects built from aliases and merge keys are copied apart (no shared
sub-objects), so pinning one image path can never silently change another.

``dump_all`` writes what Argo CD reads back: no aliases, keys in order, and
every string that any common YAML parser (PyYAML, go-yaml v2/v3) could read
as a number, bool, null or date is quoted, so a round trip keeps types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gate.errors import ManifestError, SizeLimitError

__all__ = [
    "DEFAULT_MAX_ALIASES",
    "DEFAULT_MAX_ALIAS_EXPANSION",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "dump_all",
    "load_all",
    "load_json",
]

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: Alias references allowed per input (real manifests use a handful, if any).
DEFAULT_MAX_ALIASES = 1_000
#: Nodes that aliases and merge keys may add beyond the nodes actually written.
DEFAULT_MAX_ALIAS_EXPANSION = 100_000
#: Nesting depth. Deep CRD schemas reach ~60; the cap keeps recursive walkers
#: (ours and PyYAML's representer) far from Python's recursion limit.
DEFAULT_MAX_DEPTH = 200

_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_STR_TAG = "tag:yaml.org,2002:str"
_ALLOWED_TAGS = frozenset(
    {
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        _STR_TAG,
        _SEQ_TAG,
        _MAP_TAG,
    }
)

# libyaml parses and composes in C (ten times faster, with its own nesting
# limit); construction, where all the checks live, stays in Python.
try:
    from yaml._yaml import CParser as _CParser

    _HAVE_LIBYAML = True
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _HAVE_LIBYAML = False


class _StrictResolver(yaml.resolver.BaseResolver):
    """YAML 1.1 implicit types minus timestamps and the ``=`` value key.

    Kubernetes (go-yaml via sigs.k8s.io/yaml) reads ``2024-01-01`` as a string;
    resolving it to a ``date`` here would also be a type the manifests cannot
    carry.
    """

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {  # noqa: RUF012
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
        ]
        for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    }


class _StrictConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor restricted to JSON-like types, with duplicate checks."""

    source: str

    # Only the JSON-like tags; every other tag reaches construct_undefined.
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        tag: constructor
        for tag, constructor in yaml.constructor.SafeConstructor.yaml_constructors.items()
        if tag in _ALLOWED_TAGS
    }

    def construct_undefined(self, node: Node) -> Any:
        raise ManifestError(
            f"{self.source}, line {node.start_mark.line + 1}: unsupported YAML tag {node.tag!r}",
            reason="unsupported-tag",
            found=node.tag,
            expected="plain data: null, bool, int, float, string, list, mapping",
            hint="remove the tag; Kubernetes manifests carry JSON-like data only",
        )

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        return {
            key: self.construct_object(value_node, deep=deep)
            for key, value_node in self._effective_pairs(node).items()
        }

    def _effective_pairs(self, node: MappingNode) -> dict[Any, Node]:
        """The key/value nodes of a mapping after YAML 1.1 merges, checked for duplicates.

        Works on nodes, not on constructed objects: a merge source may still be
        half-built (PyYAML fills containers lazily), so it is flattened here.
        """
        explicit: list[tuple[Node, Node]] = []
        merge_sources: list[MappingNode] = []
        merge_line: int | None = None
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                if merge_line is not None:
                    raise self._duplicate(key_node, "<<", merge_line)
                merge_line = key_node.start_mark.line + 1
                merge_sources = self._merge_sources(value_node)
            else:
                explicit.append((key_node, value_node))

        # Merged keys first (YAML 1.1: the first source of ``<<: [a, b]``
        # wins), then explicit keys override them. Overriding a merged key is
        # what merge keys are for, so it is not a duplicate.
        result: dict[Any, Node] = {}
        for source_node in merge_sources:
            for key, value_node in self._effective_pairs(source_node).items():
                result.setdefault(key, value_node)
        merged_keys = set(result)

        seen_value: dict[Any, int] = {}
        seen_text: dict[str, int] = {}
        for key_node, value_node in explicit:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                raise ManifestError(
                    f"{self.source}, line {line}: a mapping key must be a scalar",
                    reason="invalid-yaml",
                    found=type(key_node).__name__,
                    expected="a string key",
                )
            key = self.construct_object(key_node, deep=True)
            # By value (``yes``/``true``, ``1``/``0x1``) and by spelling
            # (``1``/``"1"``: Kubernetes turns both into the key "1").
            first = seen_value.get(key, seen_text.get(key_node.value))
            if first is not None:
                raise self._duplicate(key_node, key, first)
            seen_value[key] = line
            seen_text[key_node.value] = line
            if key in merged_keys:
                del result[key]  # keep the explicit key at its written position
                merged_keys.discard(key)
            result[key] = value_node
        return result

    def _merge_sources(self, value_node: Node) -> list[MappingNode]:
        if isinstance(value_node, MappingNode):
            return [value_node]
        if isinstance(value_node, SequenceNode) and all(
            isinstance(item, MappingNode) for item in value_node.value
        ):
            return list(value_node.value)
        raise ManifestError(
            f"{self.source}, line {value_node.start_mark.line + 1}: "
            "a merge key '<<' needs a mapping or a list of mappings",
            reason="invalid-yaml",
        )

    def _duplicate(self, key_node: Node, key: Any, first_line: int) -> ManifestError:
        line = key_node.start_mark.line + 1
        return ManifestError(
            f"{self.source}, line {line}: duplicate key {key!r} (first at line {first_line})",
            reason="duplicate-key",
            found=f"key {key!r} at lines {first_line} and {line}",
            expected="each key once per mapping",
            hint="remove one of them; YAML parsers disagree on which one wins",
        )


_StrictConstructor.yaml_constructors[None] = _StrictConstructor.construct_undefined


class _PyStrictLoader(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    _StrictConstructor,
    _StrictResolver,
):
    """Pure-Python parser: the fallback without libyaml (same checks)."""

    def __init__(self, stream: str | bytes, source: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _StrictConstructor.__init__(self)
        _StrictResolver.__init__(self)
        self.source = source


_StrictLoader: type[_PyStrictLoader] | type[_CStrictLoader] = _PyStrictLoader
if _HAVE_LIBYAML:

    class _CStrictLoader(_CParser, _StrictConstructor, _StrictResolver):
        def __init__(self, stream: str | bytes, source: str) -> None:
            _CParser.__init__(self, stream)
            _StrictConstructor.__init__(self)
            _StrictResolver.__init__(self)
            self.source = source

    _StrictLoader = _CStrictLoader


class _Budget:
    """Alias and expansion budget shared by all documents of one input."""

    def __init__(self, max_aliases: int, max_expansion: int, max_depth: int) -> None:
        self.aliases_left = max_aliases
        self.expansion_left = max_expansion
        self.max_depth = max_depth


def _check_graph(root: Node, budget: _Budget, source: str) -> bool:
    """Bound what aliases would expand to, without expanding anything.

    A composed document is a graph: an alias is a second edge to an existing
    node. One post-order walk with memoisation gives every node's expanded
    size and depth in time linear in the *written* document, so
    ``lol9: [*lol8 x10]`` (10^9 nodes) costs a few hundred steps to refuse.
    Only aliases of collections are counted: an alias of a scalar is a leaf
    and cannot amplify anything. Returns whether any collection is shared.
    """
    if isinstance(root, ScalarNode):
        return False
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    referenced: set[int] = {id(root)}
    distinct = 0
    shared = False
    stack: list[tuple[Node, list[Node] | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        nid = id(node)
        if kids is not None:  # all children done
            on_path.discard(nid)
            total = 1
            deepest = 0
            for kid in kids:
                if kid.__class__ is ScalarNode:
                    total += 1
                    deepest = deepest or 1
                else:
                    total += size[id(kid)]
                    deepest = max(deepest, depth[id(kid)])
            size[nid] = total
            depth[nid] = deepest + 1
            if deepest + 1 > budget.max_depth:
                raise ManifestError(
                    f"{source}, line {node.start_mark.line + 1}: nesting deeper than "
                    f"{budget.max_depth} levels",
                    reason="depth-limit",
                )
            # total - distinct is a lower bound of the expansion: stop as soon
            # as it is over budget instead of summing ever larger numbers.
            if total - distinct > budget.expansion_left:
                raise _alias_error(source, "aliases expand the document beyond the limit")
            continue
        if nid in size:
            continue
        kids = (
            list(node.value)
            if isinstance(node, SequenceNode)
            else [n for pair in node.value for n in pair]
        )
        on_path.add(nid)
        stack.append((node, kids))
        distinct += 1
        for kid in kids:
            if kid.__class__ is ScalarNode:
                distinct += 1
                continue
            kid_id = id(kid)
            if kid_id in on_path:
                raise ManifestError(
                    f"{source}, line {kid.start_mark.line + 1}: recursive alias",
                    reason="alias-limit",
                    found="an alias that refers to a node containing it",
                    expected="a tree (aliases only to finished nodes)",
                )
            if kid_id in referenced:  # a second edge to one collection: an alias
                shared = True
                budget.aliases_left -= 1
                if budget.aliases_left < 0:
                    raise _alias_error(source, "too many alias references")
            else:
                referenced.add(kid_id)
            if kid_id not in size:
                stack.append((kid, None))
    expansion = size[id(root)] - distinct
    budget.expansion_left -= expansion
    if budget.expansion_left < 0:
        raise _alias_error(source, f"aliases expand the document by {expansion} nodes")
    return shared


def _alias_error(source: str, what: str) -> ManifestError:
    return ManifestError(
        f"{source}: {what}",
        reason="alias-limit",
        found=what,
        expected="a bounded number of aliases and a bounded expansion",
        hint="write the repeated structure out; aliases of this size look like a YAML bomb",
    )


def _untangle(value: Any) -> Any:
    """Copy without memo: shared sub-objects (from aliases) become separate trees."""
    if isinstance(value, dict):
        return {k: _untangle(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untangle(v) for v in value]
    return value


def _flatten(doc: dict[str, Any], source: str, out: list[dict[str, Any]]) -> None:
    """Flatten list objects the way Argo CD does.

    Argo CD (unstructured ``IsList``) treats any object whose ``items`` is a
    list as a list and applies its items; so must we, or an image inside
    ``items`` would be applied without being checked.
    """
    items = doc.get("items")
    kind = doc.get("kind")
    if isinstance(items, list):
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ManifestError(
                    f"{source}: item {position} of a {kind or 'list'} is not an object",
                    reason="not-an-object",
                    found=type(item).__name__,
                    expected="a mapping with apiVersion and kind",
                )
            _flatten(item, source, out)
        return
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc and items is not None:
        raise ManifestError(
            f"{source}: {kind} has 'items' that is not a list", reason="not-an-object"
        )
    out.append(doc)


def load_all(
    data: bytes | str,
    *,
    source: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_aliases: int = DEFAULT_MAX_ALIASES,
    max_alias_expansion: int = DEFAULT_MAX_ALIAS_EXPANSION,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[dict[str, Any]]:
    """Load every document of a multi-document YAML stream, strictly.

    Empty and ``null`` documents are skipped, list objects are flattened, and
    any other non-mapping document is a ``ManifestError`` (``not-an-object``).
    ``source`` names the input in error messages.
    """
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise SizeLimitError(
            f"{source}: {size} bytes of YAML, more than the limit of {max_bytes}",
            reason="size-limit",
            found=f"{size} bytes",
            expected=f"at most {max_bytes} bytes",
        )
    budget = _Budget(max_aliases, max_alias_expansion, max_depth)
    loader = _StrictLoader(data, source)
    out: list[dict[str, Any]] = []
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:  # pragma: no cover - check_node() said there is one
                continue
            shared = _check_graph(node, budget, source)
            value = loader.construct_document(node)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ManifestError(
                    f"{source}: document {index} is a {type(value).__name__}, not an object",
                    reason="not-an-object",
                    found=type(value).__name__,
                    expected="a mapping with apiVersion and kind",
                )
            # Copy shared sub-objects apart only where aliases made some.
            _flatten(_untangle(value) if shared else value, source, out)
    except yaml.constructor.ConstructorError as exc:
        raise ManifestError(f"{source}: {exc}", reason="invalid-yaml") from None
    except yaml.YAMLError as exc:
        raise ManifestError(
            f"{source}: not valid YAML: {exc}",
            reason="invalid-yaml",
            hint="run the renderer locally and check its output",
        ) from None
    except RecursionError:  # pragma: no cover - the depth cap comes first
        raise ManifestError(f"{source}: nesting too deep", reason="depth-limit") from None
    finally:
        loader.dispose()
    return out


def load_json(
    data: bytes | str,
    *,
    source: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[dict[str, Any]]:
    """Load one JSON object (or list object) with the same rules as ``load_all``.

    JSON files go through ``json``, not the YAML parser: JSON allows tabs
    where YAML does not. Duplicate keys are refused here too (``json`` keeps
    the last silently), and so are ``NaN``/``Infinity``, which are not JSON.
    """
    size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
    if size > max_bytes:
        raise SizeLimitError(
            f"{source}: {size} bytes of JSON, more than the limit of {max_bytes}",
            reason="size-limit",
        )

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ManifestError(
                    f"{source}: duplicate key {key!r}",
                    reason="duplicate-key",
                    found=f"key {key!r} twice in one object",
                    expected="each key once per object",
                    hint="remove one of them; JSON parsers disagree on which one wins",
                )
            out[key] = value
        return out

    def no_constant(name: str) -> Any:
        raise ManifestError(f"{source}: {name} is not JSON", reason="invalid-yaml")

    try:
        value = json.loads(data, object_pairs_hook=pairs, parse_constant=no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{source}: not valid JSON: {exc}", reason="invalid-yaml") from None
    except RecursionError:
        raise ManifestError(f"{source}: nesting too deep", reason="depth-limit") from None
    if _depth(value) > max_depth:
        raise ManifestError(
            f"{source}: nesting deeper than {max_depth} levels", reason="depth-limit"
        )
    if value is None:
        return []
    if not isinstance(value, dict):
        raise ManifestError(
            f"{source}: the document is a {type(value).__name__}, not an object",
            reason="not-an-object",
            found=type(value).__name__,
            expected="a mapping with apiVersion and kind",
        )
    out: list[dict[str, Any]] = []
    _flatten(value, source, out)
    return out


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node)
    return deepest


# --- dumping ---------------------------------------------------------------

# Strings that some parser on the way to the cluster could read as a non-string:
# YAML 1.1 bools/nulls (go-yaml v2, which sigs.k8s.io/yaml uses), YAML 1.2
# forms (``0o17``), Go's number syntax (``1e3``, ``0x_1``, ``1_000``), dates.
_AMBIGUOUS_WORDS = frozenset(
    {
        "",
        "~",
        "null",
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        ".nan",
        ".inf",
        "-.inf",
        "+.inf",
        "<<",
        "=",
    }
)
_NUMBER_LIKE = re.compile(r"^[-+.]?[0-9.]")


def _needs_quotes(value: str) -> bool:
    return value.lower() in _AMBIGUOUS_WORDS or bool(_NUMBER_LIKE.match(value))


try:  # libyaml's emitter: several times faster than the pure-Python one
    from yaml import CSafeDumper as _DumperBase
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeDumper as _DumperBase  # type: ignore[assignment]


class _Dumper(_DumperBase):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: _DumperBase, value: str) -> yaml.ScalarNode:
    if _needs_quotes(value):
        return dumper.represent_scalar(_STR_TAG, value, style="'")
    if "\n" in value:
        # ConfigMap scripts stay readable; the emitter falls back to quotes
        # where a block scalar cannot carry the value exactly.
        return dumper.represent_scalar(_STR_TAG, value, style="|")
    return dumper.represent_scalar(_STR_TAG, value)


_Dumper.add_representer(str, _represent_str)


def dump_all(docs: Iterable[Mapping[str, Any]]) -> str:
    """YAML for Argo CD: ``---``-separated documents, original key order, no aliases."""
    return yaml.dump_all(
        list(_plain_docs(docs)),
        Dumper=_Dumper,
        explicit_start=True,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )


def _plain_docs(docs: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    for doc in docs:
        yield _untangle(dict(doc))
