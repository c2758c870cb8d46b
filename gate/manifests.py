"""Find every container image in rendered manifests, and pin them to digests.

An image the gate does not find is an image it does not verify, so extraction
errs on the side of finding too much:

* every container list of a pod spec: ``containers``, ``initContainers`` and
  ``ephemeralContainers`` (an unsigned image hidden in an init or ephemeral
  container runs just the same), and its image volumes
  (``volumes[*].image.reference``: pulled by the kubelet and mounted);
* every place a pod spec lives in the built-in kinds (Pod, PodTemplate, the
  workload controllers, CronJob) *and* the same shapes in any other object:
  custom resources with a ``spec.template.spec`` or
  ``spec.jobTemplate.spec.template.spec`` pod template (Argo Rollouts, KEDA
  ScaledJobs, Knative, ...) are covered without configuration;
* any other mapping, at any depth of any object, whose container list holds
  string ``image`` values (pod templates of custom resources at other paths);
* the policy's ``imageFields`` for custom resources with other shapes.

An ``image`` that is present but not a non-empty string is a ``ManifestError``
(``invalid-image-field``), never skipped: ``image: [evil]`` or ``image: 42``
would otherwise pass the gate unseen and be interpreted by something else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gate.errors import ManifestError

__all__ = [
    "CONTAINER_LISTS",
    "ImageField",
    "ImageOccurrence",
    "PathKey",
    "extract_images",
    "parse_field_path",
    "pin_images",
    "unclaimed_image_keys",
]

PathKey = str | int
Path = tuple[PathKey, ...]

#: The lists of a pod spec that hold containers with an ``image``.
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")

# Where the pod spec lives, by kind, for the built-in kinds. These are
# checked strictly (a malformed container list is an error).
_POD_SPEC_BY_KIND: dict[str, Path] = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
# Pod-template shapes looked for in every object, whatever its kind.
_GENERIC_POD_SPECS: tuple[Path, ...] = (
    ("spec", "template", "spec"),
    ("spec", "jobTemplate", "spec", "template", "spec"),
)


@dataclass(frozen=True)
class ImageOccurrence:
    """One image reference, and exactly where it is."""

    doc_index: int
    path: Path
    ref: str
    api_version: str
    kind: str
    name: str
    namespace: str | None


@dataclass(frozen=True)
class ImageField:
    """A policy ``imageFields`` entry: where a custom resource keeps images.

    ``paths`` use a small syntax: dotted keys, ``[*]`` for every element of a
    list, ``[N]`` for one element: ``spec.template.spec.containers[*].image``.
    """

    api_version: str
    kind: str
    paths: tuple[str, ...]


class _Wildcard:
    """``[*]`` in a field path."""

    def __repr__(self) -> str:
        return "[*]"


WILDCARD = _Wildcard()
Segment = str | int | _Wildcard

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\*|[0-9]+)\]|(\.)")


def parse_field_path(path: str) -> tuple[Segment, ...]:
    """Parse ``a.b[*].c[0].image`` into segments; ``ValueError`` if malformed.

    The policy loader can call this to reject a bad ``imageFields`` path when
    the policy is read (pydantic turns the ``ValueError`` into a field error).
    """
    segments: list[Segment] = []
    pos = 0
    expect_key = True  # at the start and after a dot, a key must follow
    while pos < len(path):
        match = _SEGMENT.match(path, pos)
        if match is None:
            raise ValueError(f"invalid field path {path!r} at position {pos}")
        key, index, dot = match.groups()
        if dot is not None:
            if expect_key:
                raise ValueError(f"invalid field path {path!r}: empty key at position {pos}")
            expect_key = True
        elif key is not None:
            if not expect_key:
                raise ValueError(f"invalid field path {path!r}: missing '.' at position {pos}")
            segments.append(key)
            expect_key = False
        else:
            if expect_key:
                raise ValueError(f"invalid field path {path!r}: '[' needs a key before it")
            segments.append(WILDCARD if index == "*" else int(index))
        pos = match.end()
    if expect_key or not segments or not isinstance(segments[-1], str):
        raise ValueError(f"invalid field path {path!r}: it must end with a key")
    return tuple(segments)


def _get(node: Any, path: Path) -> Any:
    for step in path:
        if isinstance(step, str) and isinstance(node, dict):
            node = node.get(step)
        else:
            return None
    return node


def _doc_identity(doc: Mapping[str, Any]) -> tuple[str, str, str, str | None]:
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = meta.get("namespace")
    return (
        _text(doc.get("apiVersion")),
        _text(doc.get("kind")),
        _text(meta.get("name")),
        namespace if isinstance(namespace, str) else None,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


class _Collector:
    def __init__(self, documents: Sequence[Mapping[str, Any]]) -> None:
        self.documents = documents
        self.found: dict[tuple[int, Path], ImageOccurrence] = {}

    def error(self, index: int, path: Path, what: str, found: Any) -> ManifestError:
        _, kind, name, namespace = _doc_identity(self.documents[index])
        where = f"{kind or 'object'} {namespace + '/' if namespace else ''}{name or '?'}"
        return ManifestError(
            f"document {index} ({where}): {what} at {_format_path(path)}",
            reason="invalid-image-field",
            found=repr(found)[:200],
            expected="an image reference: a non-empty string",
            hint="fix the manifest; an image the gate cannot read is denied, never skipped",
        )

    def add_image(self, index: int, path: Path, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            raise self.error(index, path, "image is not a non-empty string", value)
        api_version, kind, name, namespace = _doc_identity(self.documents[index])
        self.found.setdefault(
            (index, path),
            ImageOccurrence(index, path, value, api_version, kind, name, namespace),
        )

    def pod_spec(self, index: int, spec_path: Path, spec: Any, *, strict: bool) -> None:
        """Collect the images of one pod spec.

        ``strict`` (built-in kinds): a container list that is not a list of
        objects is an error. For the generic shapes in custom resources a
        ``spec.template.spec`` that is not a pod spec at all is left alone,
        but one that has container lists is held to the same rules.
        """
        if not isinstance(spec, dict):
            if strict and spec is not None:
                raise self.error(index, spec_path, "pod spec is not an object", spec)
            return
        for list_name in CONTAINER_LISTS:
            if list_name not in spec or spec[list_name] is None:
                continue
            containers = spec[list_name]
            list_path = (*spec_path, list_name)
            if not isinstance(containers, list):
                raise self.error(index, list_path, "container list is not a list", containers)
            for position, container in enumerate(containers):
                item_path = (*list_path, position)
                if not isinstance(container, dict):
                    raise self.error(index, item_path, "container is not an object", container)
                if "image" in container:
                    self.add_image(index, (*item_path, "image"), container["image"])
        self.image_volumes(index, spec_path, spec, strict=strict)

    def image_volumes(
        self, index: int, spec_path: Path, spec: dict[str, Any], *, strict: bool
    ) -> None:
        """``volumes[*].image.reference``: an OCI image the kubelet pulls and mounts.

        Red-team finding (tests/redteam/test_image_volumes.py): an ImageVolume
        (Kubernetes 1.31+) is pulled like a container image and its files are
        visible to the containers, so a signed container running a file from an
        unsigned image volume ran unverified code. Its ``image`` is an object,
        not a string, so not even the ``unchecked-image-field`` warning saw it.
        In a custom resource (``strict`` off) only ``image`` objects count.
        """
        volumes = spec.get("volumes")
        if volumes is None:
            return
        volumes_path = (*spec_path, "volumes")
        if not isinstance(volumes, list):
            if strict:
                raise self.error(index, volumes_path, "volumes is not a list", volumes)
            return
        for position, volume in enumerate(volumes):
            if not isinstance(volume, dict) or volume.get("image") is None:
                continue
            source = volume["image"]
            source_path = (*volumes_path, position, "image")
            if not isinstance(source, dict):
                if strict:
                    raise self.error(index, source_path, "image volume is not an object", source)
                continue
            self.add_image(index, (*source_path, "reference"), source.get("reference"))

    def nested_pod_specs(self, index: int, doc: Mapping[str, Any]) -> None:
        """Pod specs at any other depth: a mapping whose container list holds an ``image``.

        Red-team finding (tests/redteam/test_nested_pod_specs.py): custom resources
        keep pod templates at paths no fixed list knows (KEDA ScaledJob
        ``spec.jobTargetRef.template.spec``, Crossplane ``deploymentTemplate``, Argo
        Workflows ``containerSet``, Prometheus ``spec.containers``); their images ran
        with only an ``unchecked-image-field`` warning. Only string images count
        here (a custom resource's ``image: {repository: …}`` is not a container).
        """
        stack: list[tuple[Any, Path]] = [(doc, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node, list):
                stack.extend((item, (*path, i)) for i, item in enumerate(node))
                continue
            if not isinstance(node, dict):
                continue
            for list_name in CONTAINER_LISTS:
                containers = node.get(list_name)
                if not isinstance(containers, list):
                    continue
                for position, container in enumerate(containers):
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        self.add_image(
                            index, (*path, list_name, position, "image"), container["image"]
                        )
            if any(isinstance(node.get(n), list) for n in CONTAINER_LISTS):
                self.image_volumes(index, path, node, strict=False)
            stack.extend(
                (value, (*path, key)) for key, value in node.items() if isinstance(key, str)
            )

    def field(self, index: int, doc: Any, segments: tuple[Segment, ...], path: Path) -> None:
        """Walk a policy field path; missing (or null) parts mean "no image here"."""
        node = doc
        for position, segment in enumerate(segments):
            if node is None:
                return
            if isinstance(segment, str):
                if not isinstance(node, dict):
                    raise self.error(index, path, f"expected an object before {segment!r}", node)
                if segment not in node:
                    return
                if position == len(segments) - 1:
                    self.add_image(index, (*path, segment), node[segment])
                    return
                node = node[segment]
                path = (*path, segment)
                continue
            if not isinstance(node, list):
                raise self.error(index, path, "expected a list", node)
            if isinstance(segment, _Wildcard):
                rest = segments[position + 1 :]
                for element_index, element in enumerate(node):
                    self.field(index, element, rest, (*path, element_index))
                return
            if segment >= len(node):
                return
            node = node[segment]
            path = (*path, segment)


def extract_images(
    documents: Sequence[Mapping[str, Any]], extra_fields: Sequence[ImageField] = ()
) -> list[ImageOccurrence]:
    """Every image reference in ``documents``, in document order, each path once."""
    parsed = [
        (field.api_version, field.kind, parse_field_path(path))
        for field in extra_fields
        for path in field.paths
    ]
    collector = _Collector(documents)
    for index, doc in enumerate(documents):
        api_version, kind, _, _ = _doc_identity(doc)
        known = _POD_SPEC_BY_KIND.get(kind)
        if known is not None:
            collector.pod_spec(index, known, _get(doc, known), strict=True)
        for generic in _GENERIC_POD_SPECS:
            if generic != known:
                collector.pod_spec(index, generic, _get(doc, generic), strict=False)
        collector.nested_pod_specs(index, doc)
        for field_api_version, field_kind, segments in parsed:
            if field_api_version == api_version and field_kind == kind:
                collector.field(index, doc, segments, ())
    return sorted(collector.found.values(), key=lambda o: (o.doc_index, _sort_key(o.path)))


def _sort_key(path: Path) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, key, "") if isinstance(key, int) else (1, 0, key) for key in path)


def unclaimed_image_keys(
    documents: Sequence[Mapping[str, Any]], occurrences: Sequence[ImageOccurrence]
) -> list[tuple[int, Path]]:
    """String-valued ``image`` keys that no extractor claimed.

    Not used to decide by itself (``image`` is a common word), but the engine
    can warn on them: they are the custom resources the policy's
    ``imageFields`` should probably describe.
    """
    claimed = {(o.doc_index, o.path) for o in occurrences}
    found: list[tuple[int, Path]] = []
    for index, doc in enumerate(documents):
        stack: list[tuple[Any, Path]] = [(doc, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node, dict):
                for key, value in node.items():
                    child = (*path, str(key))
                    if key == "image" and isinstance(value, str) and (index, child) not in claimed:
                        found.append((index, child))
                    stack.append((value, child))
            elif isinstance(node, list):
                stack.extend((value, (*path, i)) for i, value in enumerate(node))
    return sorted(found, key=lambda item: (item[0], _sort_key(item[1])))


def _copy_tree(value: Any) -> Any:
    # Not copy.deepcopy: its memo keeps shared sub-objects shared, and then
    # pinning one path would change another.
    if isinstance(value, dict):
        return {key: _copy_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_tree(item) for item in value]
    return value


def pin_images(
    documents: Sequence[Mapping[str, Any]], pinned: Mapping[tuple[int, Path], str]
) -> list[dict[str, Any]]:
    """Copies of ``documents`` with exactly the given image paths replaced.

    ``pinned`` maps ``(doc_index, path)`` (as in ``ImageOccurrence``) to the
    new reference, e.g. ``repo@sha256:...``. A path that does not lead to an
    existing string is a programming error (``RuntimeError``), never a silent
    no-op: an unpinned image in the output would be a tag the gate did not
    verify.
    """
    out = [_copy_tree(dict(doc)) for doc in documents]
    for (index, path), ref in pinned.items():
        if not 0 <= index < len(out) or not path:
            raise RuntimeError(f"pin_images: no document {index} or empty path {path!r}")
        parent: Any = out[index]
        for key in path[:-1]:
            parent = _step(parent, key, index, path)
        last = path[-1]
        if not _has(parent, last) or not isinstance(parent[last], str):
            raise RuntimeError(f"pin_images: document {index} has no image at {path!r}")
        if not isinstance(ref, str) or not ref:
            raise RuntimeError(f"pin_images: empty reference for {path!r}")
        parent[last] = ref
    return out


def _has(node: Any, key: PathKey) -> bool:
    if isinstance(node, dict):
        return isinstance(key, str) and key in node
    if isinstance(node, list):
        return isinstance(key, int) and 0 <= key < len(node)
    return False


def _step(node: Any, key: PathKey, index: int, path: Path) -> Any:
    if not _has(node, key):
        raise RuntimeError(f"pin_images: document {index} has no {key!r} on {path!r}")
    return node[key]


def _format_path(path: Path) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text or "."
