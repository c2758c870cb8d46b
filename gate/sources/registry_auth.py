"""Registry authentication round trips, shared by the reading and the pushing client.

:class:`RegistryAuth` owns, for one client and one run: the policy's
``registries`` (``insecure`` hosts, credentials files), the
:class:`~gate.sources.credentials.CredentialStore`, the token cache (one token
per realm, service and scope, fetched once also when asked for concurrently)
and the auth dance of one request (:meth:`RegistryAuth.request`):

- credentials are sent pre-emptively only to the registry's own origin: the
  Basic credentials once a Basic challenge was answered, else a token for the
  request's scope once the host's token endpoint is known;
- a ``401`` from the registry's own origin is answered at most twice: a
  ``Bearer`` challenge with a token from its realm, a ``Basic`` one with the
  configured credentials; a token or credentials that were refused are not
  sent again;
- the token realm must be an http(s) URL, and plain http only where the
  policy marks the registry (or the realm's host) ``insecure``; the registry
  host's Basic credentials go to the realm (the token spec), never elsewhere.

What differs between the clients is a parameter: the scope's actions
(``pull`` or ``pull,push``), whether a challenge's own ``scope`` replaces the
client's, the hint for refused credentials, and a hook for statistics. The
pure parts (challenge parsing, token answers, the cache) are in
:mod:`gate.sources.auth`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import httpx

from gate.policy.model import RegistryConfig
from gate.sources.auth import (
    MAX_TOKEN_BYTES,
    Challenge,
    TokenCache,
    parse_token_response,
    parse_www_authenticate,
    repository_scope,
)
from gate.sources.credentials import CredentialStore, canonical_host
from gate.sources.registry_http import Reply, same_origin
from gate.sources.registry_types import RegistryAuthError, RegistryResponseError

__all__ = ["AuthHost", "Once", "RegistryAuth"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

TokenKey = tuple[str, str, str]
#: ``GET url`` with these headers, at most this many bytes; ``what`` names it in errors.
Get = Callable[[httpx.URL, Mapping[str, str], int, str], Awaitable[Reply]]
#: One try of the request, with this ``Authorization`` (None: none).
Send = Callable[[str | None], Awaitable[Reply]]


class Once(Generic[K, V]):
    """Run a coroutine once per key; later callers (also concurrent ones) share its outcome."""

    def __init__(self) -> None:
        self._futures: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, factory: Callable[[], Awaitable[V]], *, keep: bool = True) -> V:
        """The shared outcome for ``key``; with ``keep=False`` only while it is in flight."""
        future = self._futures.get(key)
        if future is None:
            future = asyncio.ensure_future(factory())
            future.add_done_callback(self._done(key, keep))
            self._futures[key] = future
        return await asyncio.shield(future)

    def _done(self, key: K, keep: bool) -> Callable[[asyncio.Future[V]], None]:
        def callback(future: asyncio.Future[V]) -> None:
            # Retrieve the outcome even if every waiter was cancelled (no "never retrieved").
            if not future.cancelled():
                future.exception()
            if not keep and self._futures.get(key) is future:
                del self._futures[key]

        return callback

    def peek(self, key: K) -> V | None:
        future = self._futures.get(key)
        if future is None or not future.done() or future.cancelled() or future.exception():
            return None
        return future.result()

    def cancel_all(self) -> None:
        for future in self._futures.values():
            future.cancel()


@dataclass
class AuthHost:
    """One registry host and what was learned about its authentication during the run."""

    name: str  # as in references: docker.io, registry.example.com, 127.0.0.1:5000
    base: httpx.URL
    insecure: bool
    basic: bool = False  # a Basic challenge was answered: send credentials pre-emptively
    bearer: Challenge | None = None  # realm and service of its token endpoint


class RegistryAuth:
    """Credentials, tokens and the auth dance for one client; see the module docstring.

    ``actions``: the scope's actions (``pull``, ``pull,push``). ``get``: how the
    client sends a token request (its HTTP layer). ``challenge_scope``: a
    challenge's own ``scope`` is asked for instead of the client's (the reading
    client: the registry knows what a read needs; the pushing client always
    asks for ``pull,push``, which serves every request of a push).
    ``refused_hint``: the hint when the token endpoint refuses, ``{host}``
    replaced. ``on_token_fetch``: called with the scope before each token request.
    """

    def __init__(
        self,
        configs: Sequence[RegistryConfig],
        *,
        actions: str,
        get: Get,
        clock: Callable[[], float],
        docker_config: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        challenge_scope: bool = False,
        refused_hint: str = "configure credentials for {host}",
        on_token_fetch: Callable[[str], None] | None = None,
    ) -> None:
        self._configs = {canonical_host(c.host): c for c in configs}
        self.credentials = CredentialStore(
            {c.host: c.credentials for c in configs if c.credentials},
            docker_config=docker_config,
            environ=environ,
        )
        self._actions = actions
        self._get = get
        self._clock = clock
        self._challenge_scope = challenge_scope
        self._refused_hint = refused_hint
        self._on_token_fetch = on_token_fetch
        self._tokens = TokenCache()
        self._flights: Once[TokenKey, str] = Once()

    def close(self) -> None:
        self._flights.cancel_all()

    # --- hosts ----------------------------------------------------------------------------------

    def is_insecure(self, host: str) -> bool:
        """Whether the policy marks ``host`` (``name[:port]``) insecure: plain http allowed."""
        config = self._configs.get(canonical_host(host))
        return config is not None and config.insecure

    def locate(self, name: str) -> tuple[httpx.URL, bool]:
        """The base URL of the registry ``name`` (Docker Hub at its API host) and if insecure."""
        insecure = self.is_insecure(name)
        api_host = DOCKER_HUB_API if canonical_host(name) == DOCKER_HUB else name
        return httpx.URL(f"{'http' if insecure else 'https'}://{api_host}"), insecure

    def scope(self, repository: str) -> str:
        return repository_scope(repository, self._actions)

    # --- one request ----------------------------------------------------------------------------

    async def request(
        self, host: AuthHost, repository: str, url: httpx.URL, send: Send, what: str
    ) -> Reply:
        """``send`` with the auth dance: pre-emptive credentials, then at most two challenges.

        Nothing is sent to, and no challenge answered for, another origin than the host's.
        """
        own = same_origin(url, host.base)
        scope = self.scope(repository)
        tried: set[TokenKey] = set()  # token keys already fetched for this request
        authorization = await self._preemptive(host, scope, tried, what) if own else None
        reply: Reply | None = None
        for _round in range(3):
            reply = await send(authorization)
            if reply.status != 401 or not own or not same_origin(reply.url, host.base):
                return reply  # a redirect target that wants auth gets none of ours
            challenges = parse_www_authenticate(
                ", ".join(reply.headers.get_list("WWW-Authenticate"))
            )
            answer = await self._answer(host, challenges, scope, authorization, tried, what)
            if answer is None:
                return reply
            authorization = answer
        assert reply is not None
        return reply

    async def _preemptive(
        self, host: AuthHost, scope: str, tried: set[TokenKey], what: str
    ) -> str | None:
        if host.bearer is not None:
            bearer = host.bearer
            key = TokenCache.key(bearer.get("realm") or "", bearer.get("service"), scope)
            if self._tokens.get(key, now=self._clock()) is None:
                tried.add(key)  # fetched now: if it is refused, do not fetch it again
            return "Bearer " + await self._token(host, bearer, scope, what)
        if host.basic:
            creds = self.credentials.get(host.name)
            return creds.basic_header() if creds is not None else None
        return None

    async def _answer(
        self,
        host: AuthHost,
        challenges: list[Challenge],
        scope: str,
        rejected: str | None,
        tried: set[TokenKey],
        what: str,
    ) -> str | None:
        """The Authorization to retry with, or None to give up (the 401 stands)."""
        by_scheme = {c.scheme: c for c in challenges}
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.get("realm"):
            host.bearer = bearer
            wanted = (bearer.get("scope") or scope) if self._challenge_scope else scope
            key = TokenCache.key(bearer.get("realm") or "", bearer.get("service"), wanted)
            if key in tried:
                # A token fetched during this very request was refused: no access.
                return None
            tried.add(key)
            if rejected is not None and rejected.startswith("Bearer "):
                # A cached token was refused (revoked or expired early): fetch it again, once.
                self._tokens.drop(key)
            answer = "Bearer " + await self._token(host, bearer, wanted, what)
            return None if answer == rejected else answer
        if "basic" in by_scheme:
            creds = self.credentials.get(host.name)
            if creds is None:
                raise RegistryAuthError(
                    f"{what}: the registry asks for credentials and none are configured",
                    hint=f"add credentials for {host.name} (policy 'credentials' or Docker config)",
                )
            answer = creds.basic_header()
            if answer == rejected:
                raise RegistryAuthError(f"{what}: the registry refused the configured credentials")
            host.basic = True
            return answer
        return None

    # --- tokens ---------------------------------------------------------------------------------

    async def _token(self, host: AuthHost, challenge: Challenge, scope: str, what: str) -> str:
        realm = challenge.get("realm") or ""
        key = TokenCache.key(realm, challenge.get("service"), scope)
        cached = self._tokens.get(key, now=self._clock())
        if cached is not None:
            return cached.value
        # Concurrent requests for one scope share one fetch; afterwards the cache decides.
        return await self._flights.get(
            key, lambda: self._fetch_token(host, challenge, scope, key, what), keep=False
        )

    async def _fetch_token(
        self, host: AuthHost, challenge: Challenge, scope: str, key: TokenKey, what: str
    ) -> str:
        realm = challenge.get("realm") or ""
        try:
            url = httpx.URL(realm)
        except (httpx.InvalidURL, TypeError):
            raise RegistryAuthError(f"{what}: the registry names an invalid token realm") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise RegistryAuthError(f"{what}: the token realm {realm!r} is not an http(s) URL")
        if url.scheme == "http" and not (host.insecure or self.is_insecure(url.netloc.decode())):
            raise RegistryAuthError(
                f"{what}: the token realm {realm} is plain http",
                hint="mark the registry insecure in the policy only for test registries",
            )
        params = {"scope": scope}
        if challenge.get("service"):
            params["service"] = challenge.get("service") or ""
        url = url.copy_merge_params(params)
        headers: dict[str, str] = {}
        creds = self.credentials.get(host.name)
        if creds is not None:
            headers["Authorization"] = creds.basic_header()
        if self._on_token_fetch is not None:
            self._on_token_fetch(scope)
        reply = await self._get(url, headers, MAX_TOKEN_BYTES, f"token for {what}")
        if reply.status in (401, 403):
            raise RegistryAuthError(
                f"{what}: the token endpoint {url.host} refused "
                + ("the configured credentials" if creds else "an anonymous request"),
                found=reply.text_excerpt() or None,
                hint=self._refused_hint.format(host=host.name),
            )
        if reply.status != 200:
            raise RegistryResponseError(
                f"{what}: the token endpoint answered HTTP {reply.status}",
                found=reply.text_excerpt() or None,
            )
        token = parse_token_response(reply.body, realm=realm, now=self._clock())
        self._tokens.put(key, token)
        return token.value
