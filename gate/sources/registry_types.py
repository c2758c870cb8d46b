"""Values the registry client returns, the media types it knows, and its errors.

Error classes follow the rule in ``docs/adr/0005-registry-client-on-httpx.md``:
bytes that could not be *received* (unreachable, 5xx or 429 after retries,
time-outs, the deadline, auth refused, not found, over the size cap) raise an
:class:`~gate.errors.EvidenceError` (could not decide, exit 3); bytes that were
received in full and are *wrong* (do not hash to the digest asked for, are not
a well-formed manifest of the media type they claim) raise a
:class:`~gate.errors.VerificationError` (deny, exit 1): a registry that
serves wrong bytes is treated as an attacker.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gate.errors import DigestMismatchError, FetchError, VerificationError

# --- media types --------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

#: Media types of single-platform manifests (``config`` + ``layers``).
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Media types of indexes (``manifests``).
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

#: Sent on every manifest GET. distribution 2.8.2 answers 404 for an OCI
#: manifest asked for with Docker types only, so all four are always listed.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

MiB = 1024 * 1024
DEFAULT_MANIFEST_MAX_BYTES = 4 * MiB
DEFAULT_BLOB_MAX_BYTES = 1 * MiB

# --- digests ------------------------------------------------------------------------------------

_DIGEST_RE = {
    "sha256": re.compile(r"sha256:[a-f0-9]{64}"),
    "sha512": re.compile(r"sha512:[a-f0-9]{128}"),
}


def is_digest(text: str) -> bool:
    """True for a digest this client can check: ``sha256:<64 hex>`` or ``sha512:<128 hex>``."""
    algorithm = text.partition(":")[0]
    pattern = _DIGEST_RE.get(algorithm)
    return pattern is not None and pattern.fullmatch(text) is not None


def check_digest_syntax(digest: str) -> str:
    """Return ``digest``, or raise :class:`ValueError` if the caller passed something else."""
    if not isinstance(digest, str) or not is_digest(digest):
        raise ValueError(f"not a sha256/sha512 digest: {digest!r}")
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``algorithm:hex`` of ``data`` (sha256 or sha512)."""
    if algorithm not in _DIGEST_RE:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_digest(data: bytes, expected: str, *, what: str) -> None:
    """Raise :class:`DigestMismatchError` unless ``data`` hashes to ``expected``."""
    actual = digest_of(data, expected.partition(":")[0])
    if actual != expected:
        raise DigestMismatchError(
            f"{what}: the registry served content that does not hash to the digest asked for",
            found=actual,
            expected=expected,
            hint="the registry (or something between it and the gate) altered the content; "
            "do not deploy it, and investigate the registry",
        )


def fallback_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag-schema fallback tag of ``digest``: ``sha256-<hex>``."""
    return check_digest_syntax(digest).replace(":", "-")


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's legacy tag for the signatures (``sig``) or attestations (``att``) of ``digest``."""
    return f"{fallback_tag(digest)}.{suffix}"


# --- errors -------------------------------------------------------------------------------------


class RegistryAuthError(FetchError):
    """The registry or its token endpoint refused us (401/403), or credentials are unreadable."""

    reason = "registry-auth"


class NotFoundError(FetchError):
    """The manifest or blob does not exist (404 where it must exist)."""

    reason = "registry-not-found"


class RegistryResponseError(FetchError):
    """An HTTP status the protocol does not allow here (an unexpected 4xx)."""

    reason = "registry-error"


class InvalidContentError(VerificationError):
    """Content received in full that is not what it claims to be: deny.

    Not JSON, duplicate keys, a media type that is not a manifest type or that
    disagrees with the body (the OCI manifest/index ambiguity), a malformed
    descriptor.
    """

    reason = "invalid-oci-content"


# --- values -------------------------------------------------------------------------------------


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor, validated (digest syntax, non-negative size)."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: _frozen(None), compare=False)
    platform: Mapping[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, value: object, *, what: str) -> Descriptor:
        """Parse one descriptor object; :class:`InvalidContentError` if malformed."""
        if not isinstance(value, dict):
            raise InvalidContentError(f"{what}: a descriptor is not an object")
        media_type = value.get("mediaType")
        digest = value.get("digest")
        size = value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise InvalidContentError(f"{what}: descriptor without a mediaType")
        if not isinstance(digest, str) or not is_digest(digest):
            raise InvalidContentError(
                f"{what}: descriptor with an invalid digest", found=repr(digest)[:200]
            )
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidContentError(f"{what}: descriptor with an invalid size", found=repr(size))
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise InvalidContentError(f"{what}: artifactType is not a string")
        annotations = value.get("annotations")
        if annotations is not None and not (
            isinstance(annotations, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in annotations.items())
        ):
            raise InvalidContentError(f"{what}: annotations are not a string map")
        platform = value.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise InvalidContentError(f"{what}: platform is not an object")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            artifact_type=artifact_type,
            annotations=_frozen(annotations),
            platform=MappingProxyType(platform) if platform is not None else None,
        )


@dataclass(frozen=True)
class ManifestDescriptor:
    """What a reference resolved to: the digest to verify and pin.

    ``tag_digest`` is set only for a ``tag@digest`` reference: the digest the
    tag names *now* (``None`` if the tag no longer exists). The image is
    verified at ``digest`` regardless; :attr:`tag_moved` is for the report.
    """

    digest: str
    media_type: str
    size: int
    tag: str | None = None
    tag_digest: str | None = None

    @property
    def tag_moved(self) -> bool:
        """A ``tag@digest`` reference whose tag is gone or names another digest now."""
        return self.tag is not None and self.tag_digest != self.digest

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class Manifest:
    """A manifest as received: exact bytes, their digest, the media type, the parsed JSON."""

    raw: bytes = field(repr=False)
    media_type: str
    digest: str
    json: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def size(self) -> int:
        return len(self.raw)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def descriptor(self) -> ManifestDescriptor:
        return ManifestDescriptor(self.digest, self.media_type, self.size)

    def layers(self) -> list[Descriptor]:
        """The ``layers`` of an image manifest (validated); ``[]`` for an index."""
        return self._descriptors("layers")

    def manifests(self) -> list[Descriptor]:
        """The ``manifests`` of an index (validated); ``[]`` for an image manifest."""
        return self._descriptors("manifests")

    def config(self) -> Descriptor | None:
        value = self.json.get("config")
        return None if value is None else Descriptor.from_json(value, what=f"{self.digest} config")

    def subject(self) -> Descriptor | None:
        value = self.json.get("subject")
        return None if value is None else Descriptor.from_json(value, what=f"{self.digest} subject")

    @property
    def artifact_type(self) -> str | None:
        value = self.json.get("artifactType")
        return value if isinstance(value, str) else None

    @property
    def annotations(self) -> Mapping[str, str]:
        value = self.json.get("annotations")
        return _frozen(value if isinstance(value, dict) else None)

    def _descriptors(self, key: str) -> list[Descriptor]:
        items = self.json.get(key) or []
        return [
            Descriptor.from_json(item, what=f"{self.digest} {key}[{i}]")
            for i, item in enumerate(items)
        ]


# --- parsing ------------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidContentError(
                f"duplicate key {key!r} in registry JSON",
                hint="JSON parsers disagree on which value wins; this content is refused",
            )
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidContentError(f"{name} in registry JSON is not JSON")


def load_registry_json(data: bytes, *, what: str) -> dict[str, Any]:
    """Parse a JSON object strictly (UTF-8, no duplicate keys, no NaN); deny otherwise."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constant,
        )
    except InvalidContentError as exc:
        raise InvalidContentError(f"{what}: {exc.message}", hint=exc.hint) from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidContentError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidContentError(f"{what}: JSON is not an object")
    return value


def parse_manifest(raw: bytes, content_type: str | None, digest: str, *, what: str) -> Manifest:
    """Check a received manifest's media type and shape; return it as a :class:`Manifest`.

    The media type is the body's ``mediaType`` when present, else the
    ``Content-Type``; when both are present they must agree, and the body's
    shape must fit the type (``manifests`` for an index, ``config`` and
    ``layers`` for an image manifest, never both), which closes the OCI
    manifest/index ambiguity.
    """
    body = load_registry_json(raw, what=what)
    header = (content_type or "").partition(";")[0].strip().lower() or None
    declared = body.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidContentError(f"{what}: mediaType is not a string")
    if declared is not None and header is not None and header != declared:
        raise InvalidContentError(
            f"{what}: the Content-Type and the manifest's mediaType disagree",
            found=f"Content-Type {header}, mediaType {declared}",
            expected="the same manifest media type in both",
        )
    media_type = declared or header
    if media_type not in MANIFEST_TYPES:
        raise InvalidContentError(
            f"{what}: not a manifest media type this gate reads",
            found=repr(media_type),
            expected=", ".join(sorted(MANIFEST_TYPES)),
            hint="Docker schema 1 and other legacy formats are not supported",
        )
    if body.get("schemaVersion") != 2:
        raise InvalidContentError(
            f"{what}: schemaVersion is not 2", found=repr(body.get("schemaVersion"))
        )
    has_manifests = "manifests" in body
    has_image_parts = "config" in body or "layers" in body
    if media_type in INDEX_TYPES:
        if not isinstance(body.get("manifests"), list) or has_image_parts:
            raise InvalidContentError(
                f"{what}: an index must have a 'manifests' list and no config or layers",
                found=media_type,
            )
    elif (
        has_manifests
        or not isinstance(body.get("config"), dict)
        or not isinstance(body.get("layers"), list)
    ):
        raise InvalidContentError(
            f"{what}: an image manifest must have a config object, a layers list "
            "and no 'manifests'",
            found=media_type,
        )
    return Manifest(raw=raw, media_type=media_type, digest=digest, json=MappingProxyType(body))
