"""The Flux OCI artifact ``gate publish`` pushes, and the cosign signature over it.

Pure functions, bytes in and bytes out (the push is :mod:`gate.sources.publish`).

The artifact has the shape ``flux push artifact`` gives it (Flux RFC-0003,
source-controller's ``OCIRepository``):

- an OCI image manifest (``application/vnd.oci.image.manifest.v1+json``);
- config media type ``application/vnd.cncf.flux.config.v1+json``; the config
  blob is ``{}`` (source-controller reads only the media type);
- one layer ``application/vnd.cncf.flux.content.v1.tar+gzip``: a tar.gz with one
  file, ``manifests.yaml``, the pinned manifests exactly as ``gate verify``
  writes them;
- annotations ``org.opencontainers.image.source`` (the Git repository URL, no
  credentials) and ``org.opencontainers.image.revision`` (``<tag or
  branch>@sha1:<commit>``, Flux's RFC-0005 revision format), plus the gate's
  policy digest. No creation time: the same manifests from the same revision
  under the same policy give the same bytes, so the same digest.

The tar.gz is deterministic: entries sorted, mtime 0, uid/gid 0, no owner
names, mode 0644, ustar format (no PAX headers), gzip without a name or a
timestamp. Only the zlib build could change the compressed bytes; the
manifests inside, and so what Flux applies, cannot.

The signature is cosign's legacy form (``sha256-<hex>.sig``, one layer per
signature, ``application/vnd.dev.cosign.simplesigning.v1+json``, the payload is
the simple-signing JSON naming the artifact digest, the base64 signature in
the ``dev.cosignproject.cosign/signature`` annotation), because
source-controller's key-based verification falls back to it when it finds no
Sigstore bundle.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from gate.errors import SignatureError, VerificationError
from gate.signing import PublicKey, Signer, verify_signature

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
FLUX_CONFIG = "application/vnd.cncf.flux.config.v1+json"
FLUX_CONTENT = "application/vnd.cncf.flux.content.v1.tar+gzip"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIMPLESIGNING_TYPE = "cosign container image signature"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SOURCE_ANNOTATION = "org.opencontainers.image.source"
REVISION_ANNOTATION = "org.opencontainers.image.revision"
POLICY_ANNOTATION = "dev.gitops-gate.policy.digest"
MANIFESTS_FILE = "manifests.yaml"

#: What an artifact may hold when read back (tests, a consumer check): far above any
#: real manifest set, far below what would hurt.
MAX_CONTENT_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 64
_FILE_MODE = 0o644
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: one byte string per value (stable digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.data)

    def descriptor(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.data),
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Artifact:
    """An OCI manifest and the blobs it names (config first)."""

    manifest: bytes
    blobs: tuple[Blob, ...]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def image_manifest(
    config: Blob, layers: Sequence[Blob], annotations: Mapping[str, str] | None = None
) -> Artifact:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Artifact(canonical_json(doc), (config, *layers))


# --- the content layer ----------------------------------------------------------------------


def pack_tar_gz(files: Mapping[str, bytes]) -> bytes:
    """A deterministic tar.gz of regular files (names relative, sorted)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            _check_name(name)
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.mode = _FILE_MODE
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.type = tarfile.REGTYPE
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a relative file name: {name!r}")


def unpack_tar_gz(data: bytes, *, max_bytes: int = MAX_CONTENT_BYTES) -> dict[str, bytes]:
    """The regular files of a content layer; anything else (links, devices, ``..``) refused."""
    try:
        raw = gzip.GzipFile(fileobj=io.BytesIO(data)).read(max_bytes + 1)
    except (OSError, EOFError) as e:
        raise VerificationError(f"the content layer is not gzip: {e}") from None
    if len(raw) > max_bytes:
        raise VerificationError(f"the content layer unpacks to more than {max_bytes} bytes")
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for i, member in enumerate(tar):
                if i >= MAX_ENTRIES:
                    raise VerificationError(
                        f"the content layer has more than {MAX_ENTRIES} entries"
                    )
                if not member.isreg():
                    raise VerificationError(f"the content layer holds a non-file {member.name!r}")
                try:
                    _check_name(member.name)
                except ValueError as e:
                    raise VerificationError(f"the content layer holds {e}") from None
                extracted = tar.extractfile(member)
                assert extracted is not None  # a regular file
                files[member.name] = extracted.read()
    except tarfile.TarError as e:
        raise VerificationError(f"the content layer is not a tar archive: {e}") from None
    return files


# --- the artifact ---------------------------------------------------------------------------


def strip_credentials(url: str) -> str:
    """A repository URL without ``user:password@``, query or fragment (a public annotation).

    Red-team: ``?access_token=…`` / ``?private_token=…`` in a clone URL went into the
    published annotation as it was; an unparsable port (``https://u:p@h:x/``) raised
    (exit 4 before verifying) and an unparsable host (``https://u:p@[h/``) kept its
    password. The user info is cut at the last ``@`` of the authority without parsing
    the rest; a URL that cannot be split at all is dropped (``""``: no annotation).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if not parts.netloc and not parts.query and not parts.fragment:
        return url  # scp-like "git@host:path" or a local path: nothing to strip
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def flux_revision(name: str | None, commit: str | None, *, object_format: str = "sha1") -> str:
    """``<tag or branch>@sha1:<commit>`` (RFC-0005); ``sha1:<commit>`` without a name.

    Without a commit the name alone (a revision given by the caller that names no
    Git object we could read).
    """
    if commit is None:
        return name or ""
    if not _COMMIT.fullmatch(commit):
        raise ValueError(f"not a commit id: {commit!r}")
    pinned = f"{object_format}:{commit}"
    return f"{name}@{pinned}" if name else pinned


def flux_artifact(
    manifests: str,
    *,
    source: str | None = None,
    revision: str | None = None,
    policy_digest: str | None = None,
) -> Artifact:
    """The Flux artifact for these pinned manifests (deterministic; see the module doc)."""
    layer = Blob(pack_tar_gz({MANIFESTS_FILE: manifests.encode("utf-8")}), FLUX_CONTENT)
    config = Blob(b"{}", FLUX_CONFIG)
    annotations: dict[str, str] = {}
    shown = strip_credentials(source) if source else ""
    if shown:
        annotations[SOURCE_ANNOTATION] = shown
    if revision:
        annotations[REVISION_ANNOTATION] = revision
    if policy_digest:
        annotations[POLICY_ANNOTATION] = policy_digest
    return image_manifest(config, [layer], annotations)


# --- the cosign signature -------------------------------------------------------------------


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload ``cosign sign`` (<= 2.x) signs, byte for byte as Go marshals it.

    Field order is Go's struct order; ``optional`` is ``null`` as cosign writes
    it without ``-a`` annotations.
    """
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIMPLESIGNING_TYPE,
        },
        "optional": None,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def signature_layer(signer: Signer, docker_reference: str, digest: str) -> Blob:
    payload = simple_signing_payload(docker_reference, digest)
    signature = base64.b64encode(signer.sign(payload)).decode("ascii")
    return Blob(payload, SIMPLESIGNING, {SIGNATURE_ANNOTATION: signature})


def cosign_config(layer_digests: Sequence[str]) -> bytes:
    """The image config go-containerregistry writes for cosign's signature image."""
    return canonical_json(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layer_digests],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": list(layer_digests)},
            "config": {},
        }
    )


def signature_manifest(layers: Sequence[Mapping[str, Any]]) -> Artifact:
    """The ``sha256-<hex>.sig`` manifest over these layer descriptors (one per signature).

    The config blob (cosign's, from go-containerregistry) is the only blob in
    :attr:`Artifact.blobs`; the layers' blobs are pushed (or already stored) separately.
    """
    config = Blob(cosign_config([str(d["digest"]) for d in layers]), OCI_CONFIG)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [dict(d) for d in layers],
    }
    return Artifact(canonical_json(doc), (config,))


def holds_signature(
    layers: Sequence[Mapping[str, Any]], payload: Blob, public_key: PublicKey
) -> bool:
    """True when one of ``layers`` is ``payload`` with a signature ``public_key`` verifies."""
    for d in layers:
        if d.get("digest") != payload.digest or d.get("mediaType") != SIMPLESIGNING:
            continue
        annotations = d.get("annotations")
        value = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        if not isinstance(value, str):
            continue
        try:
            verify_signature(public_key, base64.b64decode(value, validate=True), payload.data)
        except (ValueError, SignatureError):
            continue
        return True
    return False


def signature_tag(digest: str) -> str:
    algorithm, _, hex_value = digest.partition(":")
    return f"{algorithm}-{hex_value}.sig"
