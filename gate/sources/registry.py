"""The verifying OCI registry client (async, on httpx): resolve, manifests, blobs, referrers.

API (everything else in this package is internal)::

    from gate.sources.registry import RegistryClient, Deadline

    async with RegistryClient(policy.spec.registries, deadline=Deadline(45)) as client:
        desc = await client.resolve(ref)              # ImageReference -> ManifestDescriptor
        m = await client.get_manifest(ref.name, desc.digest)        # -> Manifest
        sig = await client.get_manifest_if_exists(ref.name, signature_tag(desc.digest))
        payload = await client.get_blob(ref.name, layer.digest)     # -> bytes (1 MiB cap)
        found = await client.referrers(ref.name, desc.digest, artifact_type=BUNDLE_TYPE)

``RegistryClient(configs=(), *, transport=None, concurrency=16, deadline=None,
deadline_s=45.0, docker_config=None, retry=RetryPolicy(), request_timeout_s=30.0)``

- ``configs``: the policy's ``registries`` (:class:`~gate.policy.model.RegistryConfig`):
  credentials file and ``insecure`` (plain http) per host. https everywhere else.
- ``transport``: the one seam, any ``httpx.AsyncBaseTransport`` (tests pass
  ``httpx.MockTransport``). ``deadline``: one :class:`Deadline` per run, shared
  with the caller; without it the client owns one of ``deadline_s`` seconds.
- ``docker_config``: a ``config.json`` (or its directory) instead of
  ``$DOCKER_CONFIG``/``~/.docker/config.json``; credential helpers are never run.

Methods (``repo_name`` is ``host/path`` as in :attr:`ImageReference.name`;
``docker.io`` is reached at ``registry-1.docker.io``):

- ``resolve(ref) -> ManifestDescriptor(digest, media_type, size, tag, tag_digest)``:
  a tag is resolved to the digest of the bytes served, once per reference per
  run (cached, also while in flight). A ``tag@digest`` reference is resolved
  at the digest, and ``tag_digest`` says what the tag names now (``tag_moved``).
  A multi-arch tag resolves to its index digest, which is what cosign signs.
- ``get_manifest(repo_name, reference, *, max_bytes=4 MiB) -> Manifest(raw,
  media_type, digest, json)``: by digest the bytes must hash to it; by tag the
  digest is computed from the bytes (``Docker-Content-Digest`` is never trusted).
  Media type and shape are checked (:func:`parse_manifest`).
- ``get_manifest_if_exists(...) -> Manifest | None``: 404 gives None (``.sig`` tags).
- ``get_blob(repo_name, digest, *, max_bytes=1 MiB) -> bytes``: hashed and compared.
- ``referrers(repo_name, digest, *, artifact_type=None) -> list[Descriptor]``:
  ``GET /v2/<name>/referrers/<digest>`` (paginated), and where the registry
  has no referrers API (404 of any body, 405, 400; probed once per host) the
  tag-schema fallback index ``sha256-<hex>``; filtered by ``artifact_type``.
- ``stats``: :class:`RegistryStats` (HTTP requests sent, token fetches and their scopes).

``Manifest`` also parses what verifiers need: ``layers()``, ``manifests()``,
``config()``, ``subject()`` (validated :class:`Descriptor` values),
``artifact_type``, ``annotations``. ``signature_tag(digest)`` and
``fallback_tag(digest)`` build cosign's ``sha256-<hex>.sig`` and the referrers tag.

Errors (see :mod:`gate.sources.registry_types`): could not obtain →
:class:`~gate.errors.FetchError` (``registry-unreachable``; subclasses
``registry-auth``, ``registry-not-found``, ``registry-error``) or
:class:`~gate.errors.SizeLimitError` (exit 3); wrong bytes →
:class:`~gate.errors.DigestMismatchError` or :class:`InvalidContentError` (deny).
Passing something that is not a digest or tag raises ``ValueError``.

Retries (tenacity) only for connection errors, time-outs, truncated bodies,
429 and 5xx, with jittered back-off, never past the deadline; at most
``concurrency`` requests are in flight (an ``asyncio.Semaphore``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from gate.policy.model import RegistryConfig
from gate.reference import ImageReference
from gate.sources.registry_auth import AuthHost, Once, RegistryAuth
from gate.sources.registry_http import (
    Deadline,
    Http,
    Reply,
    RetryPolicy,
    ShardedTransport,
    same_origin,
)
from gate.sources.registry_types import (
    DEFAULT_BLOB_MAX_BYTES,
    DEFAULT_MANIFEST_MAX_BYTES,
    MANIFEST_ACCEPT,
    OCI_INDEX,
    Descriptor,
    InvalidContentError,
    Manifest,
    ManifestDescriptor,
    NotFoundError,
    RegistryAuthError,
    RegistryResponseError,
    check_digest_syntax,
    digest_of,
    fallback_tag,
    is_digest,
    load_registry_json,
    parse_manifest,
    signature_tag,
    verify_digest,
)

__all__ = [
    "Deadline",
    "Descriptor",
    "Manifest",
    "ManifestDescriptor",
    "RegistryClient",
    "RegistryStats",
    "RetryPolicy",
    "fallback_tag",
    "signature_tag",
]

DEFAULT_CONCURRENCY = 16
DEFAULT_DEADLINE_S = 45.0
DEFAULT_REQUEST_TIMEOUT_S = 30.0
MAX_REFERRERS_PAGES = 16
USER_AGENT = "gitops-gate/0.1 (+registry client)"
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)
_NO_REFERRERS_API = frozenset({400, 404, 405})

V = TypeVar("V")


@dataclass
class RegistryStats:
    """Counters for tests and benchmarks."""

    token_fetches: int = 0
    token_scopes: list[str] = field(default_factory=list)

    requests_sent: int = 0


@dataclass
class _Host(AuthHost):
    """One registry host and what was learned about it during the run."""

    referrers_api: bool | None = None  # None: not known yet


def _split_repo_name(repo_name: str) -> tuple[str, str]:
    host, sep, repository = repo_name.partition("/")
    if not sep or not host or not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"not a repository name (host/path): {repo_name!r}")
    return host, repository


def _check_reference(reference: str) -> str:
    if is_digest(reference) or _TAG.fullmatch(reference):
        return reference
    raise ValueError(f"not a tag or a digest: {reference!r}")


class RegistryClient:
    """See the module docstring. Use as ``async with RegistryClient(...) as client:``."""

    def __init__(
        self,
        configs: Sequence[RegistryConfig] = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        deadline: Deadline | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        docker_config: str | Path | None = None,
        retry: RetryPolicy | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.deadline = deadline if deadline is not None else Deadline(deadline_s)
        self._stats = RegistryStats()
        self._auth = RegistryAuth(
            configs,
            actions="pull",
            get=lambda url, headers, max_bytes, what: self._http.request(
                "GET", url, headers=headers, max_bytes=max_bytes, what=what
            ),
            clock=self.deadline.clock,
            docker_config=docker_config,
            environ=environ,
            challenge_scope=True,
            on_token_fetch=self._count_token_fetch,
        )
        if transport is None and ShardedTransport.usable(
            os.environ if environ is None else environ
        ):
            transport = ShardedTransport(concurrency)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self._client = httpx.AsyncClient(
            transport=transport,  # None: httpx's own, with the proxy from the environment
            limits=limits,
            timeout=httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._http = Http(
            self._client,
            deadline=self.deadline,
            semaphore=asyncio.Semaphore(concurrency),
            retry=retry or RetryPolicy(),
            plain_http_ok=lambda url: self._auth.is_insecure(url.netloc.decode("ascii")),
        )
        self._hosts: dict[str, _Host] = {}
        self._resolved: Once[str, ManifestDescriptor] = Once()
        self._manifests: Once[tuple[str, str, int], Manifest | None] = Once()
        self._blobs: Once[tuple[str, str, int], bytes] = Once()
        self._referrers_probes: dict[str, asyncio.Event] = {}
        self._closed = False

    # --- lifetime -------------------------------------------------------------------------------

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for once in (self._resolved, self._manifests, self._blobs):
            once.cancel_all()
        self._auth.close()
        await self._client.aclose()

    @property
    def stats(self) -> RegistryStats:
        self._stats.requests_sent = self._http.requests_sent
        return self._stats

    def _count_token_fetch(self, scope: str) -> None:
        self._stats.token_fetches += 1
        self._stats.token_scopes.append(scope)

    # --- public API -----------------------------------------------------------------------------

    async def resolve(self, ref: ImageReference) -> ManifestDescriptor:
        """The manifest ``ref`` names: by digest if it has one, else its tag's, once per run."""
        if ref.digest is None and ref.tag is None:
            raise ValueError(f"reference {ref} has neither tag nor digest")
        return await self._resolved.get(str(ref), lambda: self._resolve(ref))

    async def get_manifest(
        self, repo_name: str, reference: str, *, max_bytes: int = DEFAULT_MANIFEST_MAX_BYTES
    ) -> Manifest:
        """The manifest at a tag or digest, checked; see the module docstring."""
        manifest = await self.get_manifest_if_exists(repo_name, reference, max_bytes=max_bytes)
        if manifest is None:
            raise NotFoundError(
                f"manifest {repo_name}:{reference} does not exist",
                hint="check the image reference and that it was pushed",
            )
        return manifest

    async def get_manifest_if_exists(
        self, repo_name: str, reference: str, *, max_bytes: int = DEFAULT_MANIFEST_MAX_BYTES
    ) -> Manifest | None:
        """Like :meth:`get_manifest`, but None when the registry answers 404."""
        _check_reference(reference)
        _split_repo_name(repo_name)
        if is_digest(reference):
            return await self._manifests.get(
                (repo_name, reference, max_bytes),
                lambda: self._fetch_manifest(repo_name, reference, max_bytes),
            )
        return await self._fetch_manifest(repo_name, reference, max_bytes)

    async def get_blob(
        self, repo_name: str, digest: str, *, max_bytes: int = DEFAULT_BLOB_MAX_BYTES
    ) -> bytes:
        """The blob's bytes, which hash to ``digest`` (else :class:`DigestMismatchError`)."""
        check_digest_syntax(digest)
        _split_repo_name(repo_name)
        return await self._blobs.get(
            (repo_name, digest, max_bytes), lambda: self._fetch_blob(repo_name, digest, max_bytes)
        )

    async def referrers(
        self, repo_name: str, digest: str, *, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: referrers API, else the fallback tag."""
        check_digest_syntax(digest)
        host_name, repository = _split_repo_name(repo_name)
        host = self._host(host_name)
        found: list[Descriptor] | None = None
        probe = self._referrers_probes.get(host.name)
        if host.referrers_api is None and probe is not None:
            await probe.wait()  # another call is finding out whether the API exists
        if host.referrers_api is None and probe is None:
            probe = self._referrers_probes[host.name] = asyncio.Event()
            try:
                found = await self._referrers_api(
                    host, repository, repo_name, digest, artifact_type
                )
            finally:
                probe.set()
        elif host.referrers_api is not False:
            found = await self._referrers_api(host, repository, repo_name, digest, artifact_type)
        if found is None:
            found = await self._referrers_fallback(repo_name, digest)
        if artifact_type is not None:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    # --- resolution -----------------------------------------------------------------------------

    async def _resolve(self, ref: ImageReference) -> ManifestDescriptor:
        if ref.digest is not None:
            manifest = await self.get_manifest(ref.name, ref.digest)
            tag_digest: str | None = None
            if ref.tag is not None:
                tag_digest = await self._tag_digest(ref.name, ref.tag)
            return ManifestDescriptor(
                manifest.digest, manifest.media_type, manifest.size, ref.tag, tag_digest
            )
        assert ref.tag is not None
        manifest = await self.get_manifest(ref.name, ref.tag)
        return manifest.descriptor()

    async def _tag_digest(self, repo_name: str, tag: str) -> str | None:
        """The digest of what ``tag`` names now (None: no such tag), for the report only.

        The bytes are hashed, not parsed: the image is verified at its pinned
        digest, so a tag that now names something unreadable is a fact to
        report, not a reason to fail.
        """
        host_name, repository = _split_repo_name(repo_name)
        what = f"manifest {repo_name}:{tag}"
        reply = await self._request(
            self._host(host_name),
            repository,
            f"/v2/{repository}/manifests/{tag}",
            accept=MANIFEST_ACCEPT,
            max_bytes=DEFAULT_MANIFEST_MAX_BYTES,
            what=what,
        )
        if reply.status == 404:
            return None
        self._expect_ok(reply, what)
        return digest_of(reply.body)

    # --- fetching -------------------------------------------------------------------------------

    async def _fetch_manifest(
        self, repo_name: str, reference: str, max_bytes: int
    ) -> Manifest | None:
        host_name, repository = _split_repo_name(repo_name)
        host = self._host(host_name)
        what = f"manifest {repo_name}{'@' if is_digest(reference) else ':'}{reference}"
        reply = await self._request(
            host,
            repository,
            f"/v2/{repository}/manifests/{reference}",
            accept=MANIFEST_ACCEPT,
            max_bytes=max_bytes,
            what=what,
        )
        if reply.status == 404:
            return None
        self._expect_ok(reply, what)
        if is_digest(reference):
            verify_digest(reply.body, reference, what=what)
            digest = reference
        else:
            digest = digest_of(reply.body)
        manifest = parse_manifest(reply.body, reply.content_type, digest, what=what)
        if not is_digest(reference):
            # Content-addressed: later reads of this digest need no round trip.
            await self._manifests.get((repo_name, digest, max_bytes), _value(manifest))
        return manifest

    async def _fetch_blob(self, repo_name: str, digest: str, max_bytes: int) -> bytes:
        host_name, repository = _split_repo_name(repo_name)
        host = self._host(host_name)
        what = f"blob {repo_name}@{digest}"
        reply = await self._request(
            host,
            repository,
            f"/v2/{repository}/blobs/{digest}",
            accept=None,
            max_bytes=max_bytes,
            what=what,
        )
        if reply.status == 404:
            raise NotFoundError(f"{what} does not exist")
        self._expect_ok(reply, what)
        verify_digest(reply.body, digest, what=what)
        return reply.body

    async def _referrers_api(
        self,
        host: _Host,
        repository: str,
        repo_name: str,
        digest: str,
        artifact_type: str | None,
    ) -> list[Descriptor] | None:
        """The referrers API's answer, or None when this registry does not have the API."""
        what = f"referrers of {repo_name}@{digest}"
        path = f"/v2/{repository}/referrers/{digest}"
        url = host.base.join(path)
        if artifact_type is not None:
            url = url.copy_merge_params({"artifactType": artifact_type})
        found: dict[str, Descriptor] = {}
        for page in range(MAX_REFERRERS_PAGES):
            reply = await self._request(
                host, repository, url, accept=OCI_INDEX,
                max_bytes=DEFAULT_MANIFEST_MAX_BYTES, what=what,
            )  # fmt: skip
            if page == 0 and reply.status in _NO_REFERRERS_API:
                if host.referrers_api is None:
                    host.referrers_api = False
                return None
            self._expect_ok(reply, what)
            host.referrers_api = True
            body = load_registry_json(reply.body, what=what)
            declared = body.get("mediaType")
            if declared is not None and declared != OCI_INDEX:
                raise InvalidContentError(
                    f"{what}: the answer is not an OCI index", found=repr(declared)
                )
            items = body.get("manifests")
            if not isinstance(items, list):
                raise InvalidContentError(f"{what}: the answer has no 'manifests' list")
            for i, item in enumerate(items):
                desc = Descriptor.from_json(item, what=f"{what} manifests[{i}]")
                found.setdefault(desc.digest, desc)
            next_url = _next_link(reply)
            if next_url is None:
                return list(found.values())
            url = reply.url.join(next_url)
            if not same_origin(url, host.base):
                raise InvalidContentError(f"{what}: pagination link leaves the registry")
        raise RegistryResponseError(f"{what}: more than {MAX_REFERRERS_PAGES} pages")

    async def _referrers_fallback(self, repo_name: str, digest: str) -> list[Descriptor]:
        index = await self.get_manifest_if_exists(repo_name, fallback_tag(digest))
        if index is None:
            return []
        if index.media_type != OCI_INDEX:
            raise InvalidContentError(
                f"referrers fallback tag {repo_name}:{fallback_tag(digest)} is not an OCI index",
                found=index.media_type,
            )
        unique: dict[str, Descriptor] = {}
        for desc in index.manifests():
            unique.setdefault(desc.digest, desc)
        return list(unique.values())

    # --- HTTP with auth -------------------------------------------------------------------------

    def _host(self, name: str) -> _Host:
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = _Host(name, *self._auth.locate(name))
        return host

    @staticmethod
    def _expect_ok(reply: Reply, what: str) -> None:
        if 200 <= reply.status < 300:
            return
        if reply.status in (401, 403):
            raise RegistryAuthError(
                f"{what}: the registry refused access (HTTP {reply.status})",
                found=reply.text_excerpt() or None,
                hint="configure credentials for this registry (policy or Docker config)",
            )
        if reply.status == 404:
            raise NotFoundError(f"{what} does not exist")
        raise RegistryResponseError(
            f"{what}: unexpected HTTP {reply.status}", found=reply.text_excerpt() or None
        )

    async def _request(
        self,
        host: _Host,
        repository: str,
        path_or_url: str | httpx.URL,
        *,
        accept: str | None,
        max_bytes: int,
        what: str,
    ) -> Reply:
        """GET with the auth dance (:meth:`RegistryAuth.request`)."""
        if self._closed:
            raise RuntimeError("RegistryClient used after it was closed")
        url = host.base.join(path_or_url) if isinstance(path_or_url, str) else path_or_url

        async def send(authorization: str | None) -> Reply:
            headers = {"Accept": accept} if accept else {}
            if authorization is not None:
                headers["Authorization"] = authorization
            return await self._http.request(
                "GET", url, headers=headers, max_bytes=max_bytes, what=what
            )

        return await self._auth.request(host, repository, url, send, what)


def _value(value: V) -> Callable[[], Awaitable[V]]:
    async def constant() -> V:
        return value

    return constant


def _next_link(reply: Reply) -> str | None:
    for header in reply.headers.get_list("Link"):
        match = _LINK_NEXT.search(header)
        if match:
            return match.group(1)
    return None
