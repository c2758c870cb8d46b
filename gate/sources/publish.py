"""The PUSH side: a small OCI writer for ``gate publish``, on the registry client's HTTP layer.

API::

    async with PushClient(policy.spec.registries, deadline=Deadline(120)) as client:
        published = await publish_signed(client, "host/repo", "tag", artifact, signer)

What it shares with the verifying client (:mod:`gate.sources.registry`): the
transport (:class:`ShardedTransport`, or httpx's own with a proxy; one
injectable ``httpx.AsyncBaseTransport`` for tests), :class:`Http` (retries only
for connection errors, time-outs, truncated bodies, 429 and 5xx, full-jitter
back-off, never past the run's :class:`Deadline`; redirects by hand, no
credentials across origins), and the authentication (:class:`RegistryAuth`:
the policy's ``registries`` (credentials files, ``insecure`` hosts; https
everywhere else), Docker-config credentials without helpers, the token flow
and cache), here with the scope ``repository:<name>:pull,push``.

What it adds, for writes:

- blobs: ``HEAD`` (already there: nothing to send), else a monolithic upload,
  ``POST /v2/<name>/blobs/uploads/`` then ``PUT <Location>?digest=<digest>``
  with the bytes; an upload session lost to a retried ``PUT`` (404) is
  started again once. Blobs over :data:`MAX_BLOB_BYTES` are refused before
  any request.
- manifests: ``PUT /v2/<name>/manifests/<tag or digest>``, at most
  :data:`MAX_MANIFEST_BYTES` (what registries accept).
- every write is checked: the registry's ``Docker-Content-Digest`` must be the
  digest of the bytes sent; when a registry sends none, the object is read
  back (``HEAD``) and must be there with the right digest and size. A
  mismatch is :class:`~gate.errors.DigestMismatchError`: a registry that
  stores other bytes than it was given is treated as an attacker (ADR 5),
  and the publish fails; it never reports success.

:func:`publish_signed` pushes the artifact by digest, then its cosign legacy
signature (``sha256-<hex>.sig``), and only then moves the tag, so a consumer
never finds the tag on an unsigned artifact.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gate.errors import DigestMismatchError, SizeLimitError
from gate.flux import (
    Artifact,
    Blob,
    holds_signature,
    signature_layer,
    signature_manifest,
    signature_tag,
)
from gate.policy.model import RegistryConfig
from gate.signing import Signer
from gate.sources.auth import repository_scope
from gate.sources.registry_auth import AuthHost, RegistryAuth
from gate.sources.registry_http import Deadline, Http, Reply, RetryPolicy, ShardedTransport
from gate.sources.registry_types import (
    MANIFEST_ACCEPT,
    OCI_MANIFEST,
    InvalidContentError,
    NotFoundError,
    RegistryAuthError,
    RegistryResponseError,
    digest_of,
    load_registry_json,
)

__all__ = [
    "MAX_BLOB_BYTES",
    "MAX_MANIFEST_BYTES",
    "Deadline",
    "Published",
    "PushClient",
    "RetryPolicy",
    "publish_signed",
]

MAX_BLOB_BYTES = 64 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_REPLY_BYTES = 64 * 1024  # what a write's answer may carry
MAX_SIGNATURES = 64  # layers kept in a .sig manifest (others' signatures included)
DEFAULT_DEADLINE_S = 120.0
DEFAULT_REQUEST_TIMEOUT_S = 60.0
USER_AGENT = "gitops-gate/0.1 (+publish)"
PUSH_ACTIONS = "pull,push"
DIGEST_HEADER = "Docker-Content-Digest"

#: The body of the request being sent from this task (see :class:`_BodyClient`).
_BODY: ContextVar[bytes | None] = ContextVar("gate_publish_body", default=None)


class _BodyClient(httpx.AsyncClient):
    """An httpx client whose requests carry the body set for the current task.

    :class:`Http` (shared with the verifying client) builds bodiless requests;
    setting :data:`_BODY` around one :meth:`Http.request` call gives that call
    and each of its retries the same bytes, without a second HTTP layer.
    """

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        body = _BODY.get()
        if body is not None:
            kwargs["content"] = body
        return super().build_request(method, url, **kwargs)


@dataclass(frozen=True)
class Published:
    """What :func:`publish_signed` wrote."""

    repo_name: str
    tag: str
    digest: str
    signature_tag: str
    signature_digest: str
    signed_now: bool  # False: a valid signature by this key was already there


def push_scope(repository: str) -> str:
    return repository_scope(repository, PUSH_ACTIONS)


class PushClient:
    """See the module docstring. Use as ``async with PushClient(...) as client:``."""

    def __init__(
        self,
        configs: Sequence[RegistryConfig] = (),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        deadline: Deadline | None = None,
        deadline_s: float = DEFAULT_DEADLINE_S,
        docker_config: str | Path | None = None,
        retry: RetryPolicy | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        environ: Mapping[str, str] | None = None,
        max_blob_bytes: int = MAX_BLOB_BYTES,
    ) -> None:
        self.deadline = deadline if deadline is not None else Deadline(deadline_s)
        self._auth = RegistryAuth(
            configs,
            actions=PUSH_ACTIONS,
            get=lambda url, headers, max_bytes, what: self._send(
                "GET", url, headers, None, max_bytes, what
            ),
            clock=self.deadline.clock,
            docker_config=docker_config,
            environ=environ,
            refused_hint="configure credentials that may push to {host}",
        )
        self.max_blob_bytes = max_blob_bytes
        if transport is None and ShardedTransport.usable(
            os.environ if environ is None else environ
        ):
            transport = ShardedTransport(4)
        self._client = _BodyClient(
            transport=transport,
            timeout=httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._http = Http(
            self._client,
            deadline=self.deadline,
            semaphore=asyncio.Semaphore(4),
            retry=retry or RetryPolicy(),
            plain_http_ok=lambda url: self._auth.is_insecure(url.netloc.decode("ascii")),
        )
        self._hosts: dict[str, AuthHost] = {}
        self._closed = False

    async def __aenter__(self) -> PushClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._auth.close()
            await self._client.aclose()

    @property
    def requests_sent(self) -> int:
        return self._http.requests_sent

    # --- writes ---------------------------------------------------------------------------------

    async def push_blob(self, repo_name: str, data: bytes) -> str:
        """Store ``data`` as a blob (unless it is there); return its digest, checked."""
        blob = Blob(data, "application/octet-stream")
        digest = blob.digest
        self._check_size(digest, len(data))
        host, repository = self._split(repo_name)
        what = f"blob {repo_name}@{digest}"
        if await self._blob_stored(host, repository, digest, len(data), what):
            return digest
        for attempt in range(2):
            start = await self._request(
                "POST", host, repository, f"/v2/{repository}/blobs/uploads/",
                body=b"", headers={}, what=f"{what}: starting the upload",
            )  # fmt: skip
            self._expect(start, (202,), f"{what}: starting the upload")
            location = start.headers.get("Location")
            if not location:
                raise RegistryResponseError(f"{what}: the upload answer has no Location")
            url = start.url.join(location).copy_merge_params({"digest": digest})
            reply = await self._request(
                "PUT", host, repository, url, body=data,
                headers={"Content-Type": "application/octet-stream"}, what=what,
            )  # fmt: skip
            if reply.status == 404 and attempt == 0:
                continue  # the session expired (a retried PUT after a lost answer): once more
            self._expect(reply, (201, 204), what)
            await self._check_written(reply, host, repository, "blobs", digest, len(data), what)
            return digest
        raise AssertionError("unreachable")  # pragma: no cover

    async def push_manifest(
        self, repo_name: str, artifact: Artifact, reference: str | None = None
    ) -> str:
        """PUT the manifest at ``reference`` (a tag; default its digest); return the digest."""
        data = artifact.manifest
        if len(data) > MAX_MANIFEST_BYTES:
            raise InvalidContentError(
                f"the manifest is {len(data)} bytes, more than registries accept "
                f"({MAX_MANIFEST_BYTES})"
            )
        digest = artifact.digest
        ref = reference or digest
        host, repository = self._split(repo_name)
        what = f"manifest {repo_name}{':' if reference else '@'}{ref}"
        reply = await self._request(
            "PUT", host, repository, f"/v2/{repository}/manifests/{ref}", body=data,
            headers={"Content-Type": artifact.media_type}, what=what,
        )  # fmt: skip
        self._expect(reply, (201, 204), what)
        await self._check_written(reply, host, repository, "manifests", digest, len(data), what)
        return digest

    async def push_artifact(
        self, repo_name: str, artifact: Artifact, reference: str | None = None
    ) -> str:
        """Its blobs, then the manifest (at ``reference``, default by digest).

        Every size is checked before the first request: nothing half-pushed for a cap.
        """
        for blob in artifact.blobs:
            self._check_size(blob.digest, len(blob.data))
        for blob in artifact.blobs:
            await self.push_blob(repo_name, blob.data)
        return await self.push_manifest(repo_name, artifact, reference)

    def _check_size(self, digest: str, size: int) -> None:
        if size > self.max_blob_bytes:
            raise SizeLimitError(
                f"blob {digest} is {size} bytes, more than the limit of {self.max_blob_bytes}",
                hint="the rendered manifests are unusually large; check the source",
            )

    # --- reads the writer needs ----------------------------------------------------------------

    async def get_manifest_json(
        self, repo_name: str, reference: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The digest of the manifest at ``reference`` and its JSON (None: 404), capped."""
        host, repository = self._split(repo_name)
        what = f"manifest {repo_name}:{reference}"
        reply = await self._request(
            "GET", host, repository, f"/v2/{repository}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT}, what=what, max_bytes=MAX_MANIFEST_BYTES,
        )  # fmt: skip
        if reply.status == 404:
            return None
        self._expect(reply, (200,), what)
        return digest_of(reply.body), load_registry_json(reply.body, what=what)

    # --- checks ---------------------------------------------------------------------------------

    async def _blob_stored(
        self, host: AuthHost, repository: str, digest: str, size: int, what: str
    ) -> bool:
        reply = await self._request(
            "HEAD", host, repository, f"/v2/{repository}/blobs/{digest}", headers={}, what=what
        )
        if reply.status != 200:
            return False
        length = reply.headers.get("Content-Length")
        return length is None or length.strip() == str(size)

    async def _check_written(
        self,
        reply: Reply,
        host: AuthHost,
        repository: str,
        kind: str,
        digest: str,
        size: int,
        what: str,
    ) -> None:
        """The registry stored ``digest``: its answer says so, or a read-back shows it."""
        said = reply.headers.get(DIGEST_HEADER)
        if said is not None:
            if said.strip() != digest:
                raise DigestMismatchError(
                    f"{what}: the registry says it stored {said.strip()}, not the bytes sent",
                    found=said.strip(),
                    expected=digest,
                    hint="the registry (or something between) altered the upload; "
                    "nothing was published",
                )
            return
        headers = {"Accept": MANIFEST_ACCEPT} if kind == "manifests" else {}
        back = await self._request(
            "HEAD", host, repository, f"/v2/{repository}/{kind}/{digest}",
            headers=headers, what=f"{what}: reading it back",
        )  # fmt: skip
        if back.status != 200:
            raise DigestMismatchError(
                f"{what}: the registry accepted the upload but has no {digest}",
                found=f"HTTP {back.status}",
                expected=digest,
            )
        length = back.headers.get("Content-Length")
        stored = back.headers.get(DIGEST_HEADER)
        if (length is not None and length.strip() != str(size)) or (
            stored is not None and stored.strip() != digest
        ):
            raise DigestMismatchError(
                f"{what}: the registry stored something else than the bytes sent",
                found=f"{stored or '?'} ({length or '?'} bytes)",
                expected=f"{digest} ({size} bytes)",
            )

    @staticmethod
    def _expect(reply: Reply, statuses: Sequence[int], what: str) -> None:
        if reply.status in statuses:
            return
        if reply.status in (401, 403):
            raise RegistryAuthError(
                f"{what}: the registry refused to accept the push (HTTP {reply.status})",
                found=reply.text_excerpt() or None,
                hint="configure credentials that may push to this repository "
                "(policy registries[].credentials or a Docker config)",
            )
        if reply.status == 404:
            raise NotFoundError(f"{what}: the registry answered 404", found=reply.text_excerpt())
        raise RegistryResponseError(
            f"{what}: unexpected HTTP {reply.status}", found=reply.text_excerpt() or None
        )

    # --- HTTP with auth -------------------------------------------------------------------------

    def _split(self, repo_name: str) -> tuple[AuthHost, str]:
        name, sep, repository = repo_name.partition("/")
        if not sep or not name or not repository:
            raise ValueError(f"not a repository name (host/path): {repo_name!r}")
        host = self._hosts.get(name)
        if host is None:
            host = self._hosts[name] = AuthHost(name, *self._auth.locate(name))
        return host, repository

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        body: bytes | None,
        max_bytes: int,
        what: str,
    ) -> Reply:
        token = _BODY.set(body)
        try:
            return await self._http.request(
                method, url, headers=headers, max_bytes=max_bytes, what=what
            )
        finally:
            _BODY.reset(token)

    async def _request(
        self,
        method: str,
        host: AuthHost,
        repository: str,
        path_or_url: str | httpx.URL,
        *,
        headers: Mapping[str, str],
        what: str,
        body: bytes | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> Reply:
        """One request with the auth dance (:meth:`RegistryAuth.request`)."""
        if self._closed:
            raise RuntimeError("PushClient used after it was closed")
        url = host.base.join(path_or_url) if isinstance(path_or_url, str) else path_or_url

        async def send(authorization: str | None) -> Reply:
            sent = dict(headers)
            if authorization is not None:
                sent["Authorization"] = authorization
            return await self._send(method, url, sent, body, max_bytes, what)

        return await self._auth.request(host, repository, url, send, what)


# --- the publish sequence --------------------------------------------------------------------


async def publish_signed(
    client: PushClient,
    repo_name: str,
    tag: str,
    artifact: Artifact,
    signer: Signer,
    *,
    docker_reference: str | None = None,
) -> Published:
    """Push ``artifact`` by digest, sign it (cosign legacy ``.sig``), then move ``tag`` to it.

    Idempotent: the same artifact gives the same digest, and a ``.sig`` that
    already holds a valid signature by this key over this digest is left as it
    is. Other signatures in the ``.sig`` manifest are kept (as cosign appends).
    """
    digest = await client.push_artifact(repo_name, artifact)
    sig_tag = signature_tag(digest)
    payload = signature_layer(signer, docker_reference or repo_name, digest)
    existing = await client.get_manifest_json(repo_name, sig_tag)
    layers = _signature_layers(existing[1] if existing is not None else None)
    signed_now = existing is None or not holds_signature(layers, payload, signer.public_key)
    if signed_now:
        await client.push_blob(repo_name, payload.data)
        layers = [*layers, payload.descriptor()][-MAX_SIGNATURES:]
        sig_digest = await client.push_artifact(repo_name, signature_manifest(layers), sig_tag)
    else:
        assert existing is not None
        sig_digest = existing[0]
    # Only now does the tag name the artifact: it is never seen unsigned.
    await client.push_manifest(repo_name, artifact, tag)
    return Published(repo_name, tag, digest, sig_tag, sig_digest, signed_now)


def _signature_layers(existing: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The layer descriptors of an existing ``.sig`` manifest worth keeping."""
    if existing is None or existing.get("mediaType", OCI_MANIFEST) != OCI_MANIFEST:
        return []
    layers = existing.get("layers")
    if not isinstance(layers, list):
        return []
    kept: list[dict[str, Any]] = []
    for d in layers:
        if (
            isinstance(d, dict)
            and isinstance(d.get("digest"), str)
            and isinstance(d.get("size"), int)
            and isinstance(d.get("mediaType"), str)
        ):
            kept.append(d)
    return kept
