"""Push real OCI content into a test registry: images, indexes, Helm charts, signatures, referrers.

This is test tooling that *writes*; it is not the gate's verifying client
(``gate.sources``). It still checks what the registry says back (digests),
because a silently wrong fixture would make a test prove nothing.

Everything is deterministic for a given ``seed``: the same call pushes the
same bytes and yields the same digests (tar and gzip headers carry no time).
The forms written are the ones in ``notes/formats.md``: cosign's legacy
``sha256-<hex>.sig`` / ``.att`` tags, OCI 1.1 referrers with the tag-schema
fallback index ``sha256-<hex>`` (distribution 2.8.2 has no referrers API),
and Helm's OCI chart layout.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import tarfile
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import yaml

from testkit.registry import Registry
from testkit.tokenserver import Scope

# --- media types ------------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROV = "application/vnd.cncf.helm.chart.provenance.v1.prov"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"

# distribution 2.8.2 answers 404 for an OCI manifest asked for with Docker types only.
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
EMPTY_JSON = b"{}"
DEFAULT_TIMEOUT_S = 10.0


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Compact, sorted JSON: stable bytes, hence stable digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def signature_tag(digest: str, suffix: str = "sig") -> str:
    """cosign's legacy tag for the signatures (``sig``) or attestations (``att``) of ``digest``."""
    return f"{digest.replace(':', '-')}.{suffix}"


def referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag-schema fallback tag for ``digest``: ``sha256-<hex>``."""
    return digest.replace(":", "-")


def chart_tag(version: str) -> str:
    """OCI tags cannot hold ``+``; Helm writes ``_`` instead."""
    return version.replace("+", "_")


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str | Platform) -> Platform:
        """``linux/arm64/v8`` → Platform("linux", "arm64", "v8")."""
        if isinstance(text, Platform):
            return text
        parts = text.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"platform must be os/arch[/variant], got {text!r}")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def to_dict(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor. ``children`` lists an index's manifests (not serialised)."""

    digest: str
    size: int
    media_type: str
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None
    platform: Platform | None = None
    children: tuple[Descriptor, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, data: bytes, media_type: str, **kwargs: Any) -> Descriptor:
        return cls(sha256_digest(data), len(data), media_type, **kwargs)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform:
            out["platform"] = self.platform.to_dict()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class Layer:
    """A blob to put in a manifest's ``layers``, with its media type and annotations."""

    data: bytes
    media_type: str = OCI_LAYER_GZIP
    annotations: Mapping[str, str] | None = None

    def descriptor(self) -> Descriptor:
        return Descriptor.of(self.data, self.media_type, annotations=self.annotations or None)


@dataclass(frozen=True)
class Fetched:
    """A manifest or blob as read back: the exact bytes, the served media type, their digest."""

    data: bytes
    media_type: str
    digest: str

    def json(self) -> Any:
        return json.loads(self.data)


class RegistryHTTPError(RuntimeError):
    """The registry refused a request (status and body in the message)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        req = response.request
        super().__init__(f"{req.method} {req.url} -> {response.status_code}: {response.text[:500]}")


# --- the client -------------------------------------------------------------------------------


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="…",service="…",scope="…"`` → ("bearer", {...})."""
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    for part in _split_params(rest):
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return scheme.lower(), params


def _split_params(text: str) -> list[str]:
    """Split on commas outside quotes (scopes contain commas: ``pull,push``)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


class OciClient:
    """A small synchronous registry client with Bearer-token support (tokens cached per scope)."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._basic = (username, password) if username is not None and password else None
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)
        self._tokens: dict[str, str] = {}  # scope -> token
        self._repo_token: dict[str, str] = {}  # repo -> last token that worked for it

    @classmethod
    def for_registry(cls, registry: Registry, **kwargs: Any) -> OciClient:
        creds = registry.credentials
        user, password = creds if creds else (None, None)
        return cls(registry.url, username=user, password=password, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OciClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport --------------------------------------------------------------------------

    def _token(self, params: dict[str, str]) -> str:
        scope = params.get("scope", "")
        key = Scope.normalise(scope)  # 2.8.2 lists actions in random order
        if key in self._tokens:
            return self._tokens[key]
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        resp = httpx.get(
            params["realm"], params=query, auth=self._basic, timeout=self._http.timeout
        )
        if resp.status_code != 200:
            raise RegistryHTTPError(resp)
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RuntimeError(f"token server answered without a token: {body}")
        self._tokens[key] = str(token)
        return str(token)

    def request(
        self, method: str, url: str, repo: str, *, ok: Sequence[int] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """Send; on a Bearer challenge get a token for its scope and retry once."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if repo in self._repo_token:
            headers["Authorization"] = f"Bearer {self._repo_token[repo]}"
        resp = self._http.request(method, url, headers=headers, **kwargs)
        challenge = resp.headers.get("WWW-Authenticate", "")
        if resp.status_code == 401 and challenge.lower().startswith("bearer"):
            _, params = _parse_challenge(challenge)
            # The cached token (if any) was refused: it expired or lacks the scope.
            self._tokens.pop(Scope.normalise(params.get("scope", "")), None)
            token = self._token(params)
            self._repo_token[repo] = token
            headers["Authorization"] = f"Bearer {token}"
            resp = self._http.request(method, url, headers=headers, **kwargs)
        if resp.status_code not in ok:
            raise RegistryHTTPError(resp)
        return resp

    # --- blobs ------------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", repo, ok=(200, 404))
        return resp.status_code == 200

    def push_blob(
        self, repo: str, data: bytes, media_type: str = "application/octet-stream"
    ) -> Descriptor:
        """Upload ``data`` (POST then a monolithic PUT), unless the repository already has it."""
        desc = Descriptor.of(data, media_type)
        if self.blob_exists(repo, desc.digest):
            return desc
        start = self.request("POST", f"/v2/{repo}/blobs/uploads/", repo, ok=(202,))
        # Keep the upload URL's own query (_state): httpx's params= would replace it.
        location = httpx.URL(start.headers["Location"])
        location = location.copy_merge_params({"digest": desc.digest})
        self.request(
            "PUT",
            str(location),
            repo,
            ok=(201,),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        return desc

    def get_blob(self, repo: str, digest: str) -> bytes:
        """GET a blob and check that its bytes hash to ``digest``."""
        data = self.request(
            "GET", f"/v2/{repo}/blobs/{digest}", repo, follow_redirects=True
        ).content
        if sha256_digest(data) != digest:
            raise RuntimeError(f"blob {repo}@{digest} hashes to {sha256_digest(data)}")
        return data

    # --- manifests --------------------------------------------------------------------------

    def push_manifest(self, repo: str, data: bytes, media_type: str, reference: str) -> str:
        """PUT a manifest under a tag or its digest; returns the digest (checked against ours)."""
        digest = sha256_digest(data)
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            ok=(201,),
            content=data,
            headers={"Content-Type": media_type},
        )
        served = resp.headers.get("Docker-Content-Digest")
        if served and served != digest:
            raise RuntimeError(f"registry stored {served} for a manifest whose digest is {digest}")
        return digest

    def get_manifest(self, repo: str, reference: str, accept: str = MANIFEST_ACCEPT) -> Fetched:
        resp = self.request(
            "GET", f"/v2/{repo}/manifests/{reference}", repo, headers={"Accept": accept}
        )
        data = resp.content
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RuntimeError(f"manifest {repo}@{reference} hashes to {digest}")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return Fetched(data, media_type, digest)

    def find_manifest(self, repo: str, reference: str) -> Fetched | None:
        """Like :meth:`get_manifest`, but None when the tag or digest is not there."""
        try:
            return self.get_manifest(repo, reference)
        except RegistryHTTPError as exc:
            if exc.status_code == 404:
                return None
            raise

    def delete_manifest(self, repo: str, digest: str) -> None:
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", repo, ok=(202,))

    def list_tags(self, repo: str) -> list[str]:
        resp = self.request("GET", f"/v2/{repo}/tags/list", repo, ok=(200, 404))
        if resp.status_code == 404:
            return []
        return list(resp.json().get("tags") or [])


Target = Registry | OciClient
_CLIENTS: weakref.WeakKeyDictionary[Registry, OciClient] = weakref.WeakKeyDictionary()


def client(target: Target) -> OciClient:
    """One cached client per registry (so tokens are reused), or the client given."""
    if isinstance(target, OciClient):
        return target
    cached = _CLIENTS.get(target)
    if cached is None:
        cached = _CLIENTS[target] = OciClient.for_registry(target)
        target.add_cleanup(functools.partial(_drop_client, target))
    return cached


def _drop_client(registry: Registry) -> None:
    """On registry stop: close its cached client (no unclosed sockets left to the GC)."""
    cached = _CLIENTS.pop(registry, None)
    if cached is not None:
        cached.close()


# --- thin functional API over the client -------------------------------------------------------


def push_blob(
    target: Target, repo: str, data: bytes, media_type: str = "application/octet-stream"
) -> Descriptor:
    return client(target).push_blob(repo, data, media_type)


def push_manifest(
    target: Target, repo: str, manifest_bytes: bytes, media_type: str, reference: str
) -> str:
    return client(target).push_manifest(repo, manifest_bytes, media_type, reference)


def get_manifest(
    target: Target, repo: str, reference: str, accept: str = MANIFEST_ACCEPT
) -> Fetched:
    return client(target).get_manifest(repo, reference, accept)


def get_blob(target: Target, repo: str, digest: str) -> bytes:
    return client(target).get_blob(repo, digest)


def list_tags(target: Target, repo: str) -> list[str]:
    return client(target).list_tags(repo)


def delete_manifest(target: Target, repo: str, digest: str) -> None:
    client(target).delete_manifest(repo, digest)


def _put_manifest(
    target: Target,
    repo: str,
    manifest: Mapping[str, Any],
    media_type: str,
    tag: str | None,
    **kw: Any,
) -> Descriptor:
    """Serialise, push by digest and (when given) under ``tag``; return its descriptor."""
    data = canonical_json(manifest)
    desc = Descriptor.of(data, media_type, **kw)
    client(target).push_manifest(repo, data, media_type, tag or desc.digest)
    return desc


# --- images -----------------------------------------------------------------------------------


def make_layer(files: Mapping[str, bytes]) -> tuple[bytes, str]:
    """A deterministic gzip tar of ``files``: (compressed blob, diff_id of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size = len(files[name])
            info.mode, info.mtime, info.uid, info.gid = 0o644, 0, 0, 0
            tar.addfile(info, io.BytesIO(files[name]))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue(), sha256_digest(raw.getvalue())


def _diff_id(layer: Layer) -> str:
    """The uncompressed digest the image config lists for a layer."""
    if layer.data[:2] == b"\x1f\x8b":
        return sha256_digest(gzip.decompress(layer.data))
    return sha256_digest(layer.data)


def image_config(
    platform: Platform, diff_ids: Sequence[str], labels: Mapping[str, str] | None
) -> bytes:
    config: dict[str, Any] = {
        **platform.to_dict(),
        "config": {"Labels": dict(labels)} if labels else {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    return canonical_json(config)


def push_image(
    target: Target,
    repo: str,
    tag: str | None = None,
    *,
    layers: Sequence[Layer | bytes] | None = None,
    files: Mapping[str, bytes] | None = None,
    config: bytes | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    seed: str | int = 0,
    platform: str | Platform = "linux/amd64",
    docker: bool = False,
) -> Descriptor:
    """Push a small, real, runnable-shaped image; returns the manifest descriptor (with platform).

    By default one layer holds ``/gate-test/seed`` derived from ``seed`` (same
    seed and platform, same digest). ``files`` makes that layer from your
    files; ``layers`` gives ready blobs (bytes are taken as gzip tar layers).
    ``docker=True`` writes Docker v2 schema 2 media types instead of OCI.
    """
    plat = Platform.parse(platform)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    if layers is None:
        content = files if files is not None else {"gate-test/seed": f"{seed} {plat}\n".encode()}
        layers = [make_layer(content)[0]]
    blobs = [b if isinstance(b, Layer) else Layer(b, layer_type) for b in layers]
    if config is None:
        config_bytes = image_config(plat, [_diff_id(b) for b in blobs], None)
    else:
        config_bytes = config if isinstance(config, bytes) else canonical_json(config)
    c = client(target)
    config_desc = c.push_blob(repo, config_bytes, DOCKER_CONFIG if docker else OCI_CONFIG)
    layer_descs = [c.push_blob(repo, b.data, b.media_type) for b in blobs]
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_desc.to_dict(),
        "layers": [
            {**d.to_dict(), **({"annotations": dict(b.annotations)} if b.annotations else {})}
            for d, b in zip(layer_descs, blobs, strict=True)
        ],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return _put_manifest(target, repo, manifest, media_type, tag, platform=plat)


def push_index(
    target: Target,
    repo: str,
    tag: str | None = None,
    *,
    manifests: Sequence[Descriptor] | None = None,
    platforms: Sequence[str | Platform] = ("linux/amd64", "linux/arm64"),
    seed: str | int = 0,
    docker: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Push a multi-arch index (``docker=True``: a Docker manifest list) over per-platform images.

    Without ``manifests``, one image per platform is pushed by digest first.
    The returned descriptor's ``children`` are the platform manifests.
    """
    if manifests is None:
        manifests = [
            push_image(target, repo, None, seed=seed, platform=p, docker=docker) for p in platforms
        ]
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [m.to_dict() for m in manifests],
    }
    if annotations and not docker:  # a Docker manifest list has no annotations
        index["annotations"] = dict(annotations)
    return _put_manifest(target, repo, index, media_type, tag, children=tuple(manifests))


# --- Helm charts ------------------------------------------------------------------------------

# Field order of Helm's chart.Metadata struct: its config blob is that struct as JSON.
_HELM_METADATA_FIELDS = (
    "name", "home", "sources", "version", "description", "keywords", "maintainers", "icon",
    "apiVersion", "condition", "tags", "appVersion", "deprecated", "annotations",
    "kubeVersion", "dependencies", "type",
)  # fmt: skip


def read_chart_yaml(chart_tgz: bytes) -> dict[str, Any]:
    """Chart.yaml from a packaged chart (``<name>/Chart.yaml`` at the top of the archive)."""
    with tarfile.open(fileobj=io.BytesIO(chart_tgz), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                loaded = yaml.safe_load(extracted.read())
                if not isinstance(loaded, dict):
                    raise ValueError("Chart.yaml is not a mapping")
                return loaded
    raise ValueError("no <chart>/Chart.yaml in the archive")


def helm_config(chart_yaml: Mapping[str, Any]) -> bytes:
    """Helm's OCI config blob: the chart metadata as JSON, in Helm's field order, no empties."""
    meta = {k: chart_yaml[k] for k in _HELM_METADATA_FIELDS if chart_yaml.get(k)}
    return json.dumps(meta, separators=(",", ":")).encode()


def push_helm_chart(
    target: Target,
    repo: str,
    chart_tgz: bytes,
    version: str | None = None,
    prov_bytes: bytes | None = None,
    *,
    created: str | None = None,
) -> Descriptor:
    """Push a packaged chart as Helm does; the tag is the version with ``+`` → ``_``.

    The config blob equals Helm's byte for byte. ``version`` defaults to the one
    in Chart.yaml (pass another to push a mislabelled chart, for tests).
    ``created`` (RFC 3339) sets the annotation Helm adds; omitted by default so
    that digests stay deterministic.
    """
    meta = read_chart_yaml(chart_tgz)
    version = version or str(meta["version"])
    c = client(target)
    config = c.push_blob(repo, helm_config(meta), HELM_CONFIG)
    layers = [c.push_blob(repo, chart_tgz, HELM_CHART)]
    if prov_bytes is not None:
        layers.append(c.push_blob(repo, prov_bytes, HELM_PROV))
    annotations = {"org.opencontainers.image.title": str(meta["name"])}
    annotations["org.opencontainers.image.version"] = version
    if meta.get("description"):
        annotations["org.opencontainers.image.description"] = str(meta["description"])
    if created:
        annotations["org.opencontainers.image.created"] = created
    # Like Helm 4 (checked: `helm push` 4.1.4): no top-level "mediaType"; the registry serves
    # it from the Content-Type of the PUT, so readers must not rely on the field.
    manifest = {
        "schemaVersion": 2,
        "config": config.to_dict(),
        "layers": [d.to_dict() for d in layers],
        "annotations": annotations,
    }
    return _put_manifest(target, repo, manifest, OCI_MANIFEST, chart_tag(version))


# --- cosign legacy signatures / attestations --------------------------------------------------


def _cosign_config(layers: Sequence[Descriptor]) -> bytes:
    """The image config go-containerregistry writes for cosign's signature image."""
    return canonical_json(
        {
            "architecture": "",
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [d.digest for d in layers]},
            "config": {},
        }
    )


def _existing_layers(target: Target, repo: str, tag: str) -> list[dict[str, Any]]:
    found = client(target).find_manifest(repo, tag)
    return list(found.json().get("layers", [])) if found else []


def push_signature_manifest(
    target: Target,
    repo: str,
    subject_digest: str,
    layers: Sequence[Layer],
    suffix: str = "sig",
    *,
    append: bool = True,
) -> Descriptor:
    """Store signatures (``sig``) or attestations (``att``) as cosign ≤ 2 does.

    The manifest lives in ``repo`` (the image's repository, or a
    ``COSIGN_REPOSITORY``-style one) under ``sha256-<hex>.<suffix>``, one layer
    per signature. With ``append`` the layers of an existing manifest are kept
    and an identical layer (same digest and annotations) is not added twice,
    like cosign's duplicate detector.
    """
    tag = signature_tag(subject_digest, suffix)
    entries = _existing_layers(target, repo, tag) if append else []
    c = client(target)
    for layer in layers:
        entry = c.push_blob(repo, layer.data, layer.media_type).to_dict()
        if layer.annotations:
            entry["annotations"] = dict(layer.annotations)
        if entry not in entries:
            entries.append(entry)
    descs = [Descriptor(e["digest"], e["size"], e["mediaType"]) for e in entries]
    config = c.push_blob(repo, _cosign_config(descs), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": entries,
    }
    return _put_manifest(target, repo, manifest, OCI_MANIFEST, tag)


# --- OCI 1.1 referrers ------------------------------------------------------------------------


def push_referrer(
    target: Target,
    repo: str,
    subject: Descriptor,
    artifact_type: str,
    layer_bytes: bytes,
    layer_media_type: str,
    annotations: Mapping[str, str] | None = None,
    *,
    layer_annotations: Mapping[str, str] | None = None,
    update_fallback: bool = True,
) -> Descriptor:
    """Push an OCI 1.1 artifact manifest with ``subject`` (e.g. a cosign v3 bundle).

    distribution 2.8.2 keeps the manifest but has no referrers API, so (unless
    ``update_fallback=False``) the referrer is also listed in the tag-schema
    fallback index ``sha256-<subject hex>``, as OCI 1.1 clients do.
    """
    c = client(target)
    config = c.push_blob(repo, EMPTY_JSON, OCI_EMPTY)
    layer = Layer(layer_bytes, layer_media_type, layer_annotations).descriptor()
    c.push_blob(repo, layer_bytes, layer_media_type)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_dict(),
        "layers": [layer.to_dict()],
        "subject": Descriptor(subject.digest, subject.size, subject.media_type).to_dict(),
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    desc = _put_manifest(
        target,
        repo,
        manifest,
        OCI_MANIFEST,
        None,
        artifact_type=artifact_type,
        annotations=dict(annotations) if annotations else None,
    )
    if update_fallback:
        add_to_referrers_index(target, repo, subject.digest, desc)
    return desc


def add_to_referrers_index(
    target: Target, repo: str, subject_digest: str, referrer: Descriptor
) -> Descriptor:
    """Add ``referrer`` (with its artifactType and annotations) to the fallback index tag."""
    tag = referrers_tag(subject_digest)
    found = client(target).find_manifest(repo, tag)
    entries: list[dict[str, Any]] = list(found.json().get("manifests", [])) if found else []
    if all(e.get("digest") != referrer.digest for e in entries):
        entries.append(referrer.to_dict())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return _put_manifest(target, repo, index, OCI_INDEX, tag)
