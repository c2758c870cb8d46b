"""An in-process fake registry for httpx.MockTransport, with fault injection and a fake clock."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from gate.sources.registry import Deadline, RegistryClient, RetryPolicy
from gate.sources.registry_types import OCI_INDEX, OCI_MANIFEST

T = TypeVar("T")
Fault = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def deadline(self, seconds: float = 60.0) -> Deadline:
        return Deadline(seconds, clock=self.clock, sleep=self.sleep)


def image_manifest(seed: str = "0", media_type: str = OCI_MANIFEST) -> bytes:
    config = canonical({"seed": seed})
    layer = f"layer {seed}".encode()
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest(layer), "size": len(layer)}],
        }
    )  # fmt: skip


def index_of(*children: tuple[bytes, str], annotations: dict[str, str] | None = None) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": mt, "digest": digest(raw), "size": len(raw)} for raw, mt in children
        ],
    }
    if annotations:
        body["annotations"] = annotations
    return canonical(body)


@dataclass
class FakeRegistry:
    """Serves ``/v2/<repo>/manifests|blobs|referrers`` from dicts.

    ``auth``: None (anonymous), ``"basic"`` or ``"bearer"`` (token endpoint at
    ``realm``). ``faults`` is a queue of handlers consulted first (one per
    request) for fault injection. Every request is recorded.
    """

    host: str = "registry.example.com"
    auth: str | None = None
    user: str = "alice"
    password: str = "s3cret"
    realm: str = "https://auth.example.com/token"
    service: str = "registry.example.com"
    referrers_api: bool = False
    referrers_404_body: bytes = b"404 page not found\n"
    referrers_status: int = 404
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    referrer_pages: dict[str, list[list[dict[str, Any]]]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[httpx.Request] = field(default_factory=list)
    issued: int = 0
    extra: dict[str, Fault] = field(default_factory=dict)  # host -> handler (storage, ...)

    # --- content -------------------------------------------------------------------------------

    def put_manifest(
        self, repo: str, raw: bytes, media_type: str = OCI_MANIFEST, tag: str | None = None
    ) -> str:
        d = digest(raw)
        self.manifests[(repo, d)] = (raw, media_type)
        if tag is not None:
            self.manifests[(repo, tag)] = (raw, media_type)
        return d

    def put_blob(self, repo: str, data: bytes) -> str:
        d = digest(data)
        self.blobs[(repo, d)] = data
        return d

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, time: FakeTime | None = None, **kwargs: Any) -> RegistryClient:
        time = time or FakeTime()
        kwargs.setdefault("deadline", time.deadline())
        kwargs.setdefault("retry", RetryPolicy())
        kwargs.setdefault("environ", {"DOCKER_CONFIG": "/nonexistent/gate-test"})
        return RegistryClient(kwargs.pop("configs", ()), transport=self.transport(), **kwargs)

    # --- HTTP ----------------------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        if request.url.host == "auth.example.com":
            return self._token(request)
        if host in self.extra:
            result = self.extra[host](request)
            return await result if isinstance(result, Awaitable) else result
        self.requests.append(request)
        if self.faults:
            result = self.faults.popleft()(request)
            return await result if isinstance(result, Awaitable) else result
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        return self._serve(request)

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        got = request.headers.get("Authorization")
        if self.auth == "basic":
            want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if got != want:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="fake"'})
        elif self.auth == "bearer":
            repo = request.url.path.split("/v2/", 1)[1].rsplit("/", 2)[0]
            scope = f"repository:{repo}:pull"
            if got is None or not got.startswith("Bearer ") or got[7:].split("|")[0] != scope:
                return httpx.Response(
                    401,
                    headers={
                        "WWW-Authenticate": f'Bearer realm="{self.realm}",'
                        f'service="{self.service}",scope="{scope}"'
                    },
                )
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if self.user and request.headers.get("Authorization", "").startswith("Basic "):
            want = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            if request.headers["Authorization"] != want:
                return httpx.Response(401, json={"details": "bad credentials"})
        self.issued += 1
        scope = request.url.params.get("scope", "")
        key = "access_token" if self.issued % 2 else "token"
        return httpx.Response(200, json={key: f"{scope}|{self.issued}", "expires_in": 300})

    def _serve(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        rest = path.split("/v2/", 1)[1]
        for kind in ("manifests", "blobs", "referrers"):
            marker = f"/{kind}/"
            if marker in rest:
                repo, ref = rest.rsplit(marker, 1)
                break
        else:
            return httpx.Response(404, text="404 page not found\n")
        if kind == "manifests":
            found = self.manifests.get((repo, ref))
            if found is None:
                return httpx.Response(
                    404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]}
                )
            raw, media_type = found
            return httpx.Response(
                200,
                content=raw,
                headers={"Content-Type": media_type, "Docker-Content-Digest": digest(raw)},
            )
        if kind == "blobs":
            blob = self.blobs.get((repo, ref))
            if blob is None:
                return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
            return httpx.Response(200, content=blob)
        if not self.referrers_api:
            return httpx.Response(self.referrers_status, content=self.referrers_404_body)
        pages = self.referrer_pages.get(ref, [[]])
        page = int(request.url.params.get("page", "0"))
        headers = {"Content-Type": OCI_INDEX}
        if page + 1 < len(pages):
            headers["Link"] = f'</v2/{repo}/referrers/{ref}?page={page + 1}>; rel="next"'
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": pages[page]}
        return httpx.Response(200, content=canonical(body), headers=headers)


def status(code: int, headers: dict[str, str] | None = None) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, headers=headers or {}, text=f"fault {code}")

    return fault


def raises(exc: type[httpx.TransportError]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise exc("injected", request=request)

    return fault
