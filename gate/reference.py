"""Container image references, parsed and normalised per the distribution grammar.

Normalisation happens before any policy match, so that ``nginx``,
``docker.io/library/nginx`` and ``index.docker.io/library/nginx:latest`` are one
repository, and a lookalike host such as ``docker.io.evil.com`` never is.
Grammar: github.com/distribution/reference (reference.go, normalize.go).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.errors import UsageError

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})
_OFFICIAL_NAMESPACE = "library"
_MAX_NAME = 255

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")


class ReferenceError(UsageError):
    """A string that is not a valid image reference."""

    reason = "invalid-reference"


@dataclass(frozen=True, order=True)
class ImageReference:
    """A normalised image reference: ``registry/repository[:tag][@digest]``."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The repository name that policy patterns match: host and path."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        s = self.name
        if self.tag is not None:
            s += f":{self.tag}"
        if self.digest is not None:
            s += f"@{self.digest}"
        return s

    def with_digest(self, digest: str) -> ImageReference:
        """The same reference pinned to ``digest`` (the tag is kept for people to read)."""
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return ImageReference(self.registry, self.repository, self.tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    # A first component is a host only if it has '.' or ':', is 'localhost',
    # or has uppercase letters (reference.splitDockerDomain).
    first, sep, rest = name.partition("/")
    if not sep or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        return DEFAULT_REGISTRY, name
    return first, rest


def parse_reference(text: str, *, default_tag: bool = True) -> ImageReference:
    """Parse and normalise ``text``; raise :class:`ReferenceError` if it is malformed.

    With ``default_tag`` a reference that has neither tag nor digest gets ``latest``,
    as the container runtime would pull it.
    """
    if not isinstance(text, str) or not text or text != text.strip():
        raise ReferenceError(f"invalid image reference {text!r}", expected="a non-empty name")
    remainder = text
    digest: str | None = None
    if "@" in remainder:
        remainder, _, digest = remainder.partition("@")
        if not _DIGEST.fullmatch(digest):
            raise ReferenceError(
                f"invalid digest in image reference {text!r}", expected="algorithm:hex"
            )
        if not _SHA256.fullmatch(digest):
            # Everything the gate verifies and pins is sha256; another algorithm
            # (sha512 is valid OCI) would reach code that cannot check it.
            raise ReferenceError(
                f"unsupported digest in image reference {text!r}",
                expected="sha256: followed by 64 lowercase hex digits",
                hint="reference the image by its sha256 digest (or by tag)",
            )
    tag: str | None = None
    # The tag is after the last ':' only if no '/' follows it (a port is before a '/').
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise ReferenceError(f"invalid tag in image reference {text!r}")
    registry, path = _split_domain(remainder)
    if not _DOMAIN.fullmatch(registry):
        raise ReferenceError(f"invalid registry host in image reference {text!r}")
    if not path:
        raise ReferenceError(f"image reference {text!r} has no repository path")
    for component in path.split("/"):
        if not _PATH_COMPONENT.fullmatch(component):
            hint = "repository names are lowercase" if component.lower() != component else None
            raise ReferenceError(
                f"invalid repository path component {component!r} in image reference {text!r}",
                expected="lowercase letters, digits and separators (. _ __ -)",
                hint=hint,
            )
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"{_OFFICIAL_NAMESPACE}/{path}"
    if len(f"{registry}/{path}") > _MAX_NAME:
        raise ReferenceError(f"image name in {text!r} is longer than {_MAX_NAME} characters")
    if tag is None and digest is None and default_tag:
        tag = "latest"
    return ImageReference(registry=registry, repository=path, tag=tag, digest=digest)


def normalise_repository_pattern(pattern: str) -> str:
    """Normalise a policy pattern the way references are normalised.

    ``nginx`` becomes ``docker.io/library/nginx``, ``acme/app`` becomes
    ``docker.io/acme/app``; patterns whose first segment is a host (or a
    wildcard) are kept as written.
    """
    first = pattern.partition("/")[0]
    if "*" in first or "?" in first:
        return pattern
    registry, path = _split_domain(pattern)
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path and "*" not in path:
        path = f"{_OFFICIAL_NAMESPACE}/{path}"
    return f"{registry}/{path}"
