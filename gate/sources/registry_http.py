"""HTTP plumbing for the registry client: the run deadline, retries, capped streamed reads.

- :class:`Deadline`: one per run. Every request is bounded by what is left of
  it, and a retry whose back-off would end past it is not attempted: the
  caller gets :class:`~gate.errors.FetchError` at once. It owns the clock and
  the sleep, so tests drive it with a fake clock and never really wait.
- :class:`Http`: sends one request through the (single, injectable) httpx
  transport, following redirects by hand (``Authorization`` is dropped when a
  redirect leaves the origin; no redirect from https to plain http), reading
  the body streamed and capped, retried with tenacity only for transport
  errors, truncated bodies, 429 (``Retry-After`` honoured, capped) and 5xx,
  with full-jitter exponential back-off.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_random_exponential

from gate.errors import FetchError, SizeLimitError

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_MAX_BYTES = 64 * 1024  # what is read of a non-2xx answer, for the message


class Deadline:
    """An overall time budget: ``remaining()`` seconds are left; ``sleep`` never overshoots it."""

    def __init__(
        self,
        seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if seconds <= 0:
            raise ValueError("a deadline needs a positive number of seconds")
        self.seconds = seconds
        self.clock = clock
        self._sleep = sleep
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self.clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def check(self, what: str) -> None:
        """Raise :class:`FetchError` when no time is left."""
        if self.expired:
            raise FetchError(
                f"{what}: the run's deadline of {self.seconds:g}s is exhausted",
                hint="the registry is slow or unreachable; retry later or raise the deadline",
            )

    async def sleep(self, seconds: float) -> None:
        await self._sleep(min(max(seconds, 0.0), self.remaining()))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``backoff_*`` feed a full-jitter exponential wait."""

    max_attempts: int = 5
    backoff_multiplier_s: float = 0.25
    backoff_max_s: float = 4.0
    retry_after_cap_s: float = 10.0


@dataclass(frozen=True)
class Reply:
    """A response read in full (within its cap). ``url`` is the one that answered."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: httpx.URL

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.partition(";")[0].strip().lower() if value else None

    def text_excerpt(self, limit: int = 300) -> str:
        return self.body[:limit].decode("utf-8", "replace").strip()


class _Retryable(Exception):
    """An attempt that may be repeated: transport error, truncated body, 429 or 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class _Plan:
    """tenacity's stop and wait for one request, sharing one computed delay per attempt.

    tenacity (9.x) asks ``wait`` before ``stop``, older releases the other way
    round; the delay is computed once per attempt (so the jitter is drawn
    once) by whichever comes first, and the retry is abandoned when the
    attempts are used up or the delay would reach past the deadline.
    """

    def __init__(self, policy: RetryPolicy, deadline: Deadline) -> None:
        self.policy = policy
        self.deadline = deadline
        self.gave_up_for_deadline = False
        self._delays: dict[int, float] = {}
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff_multiplier_s, max=policy.backoff_max_s
        )

    def _delay(self, state: RetryCallState) -> float:
        n = state.attempt_number
        if n not in self._delays:
            exc = state.outcome.exception() if state.outcome is not None else None
            if isinstance(exc, _Retryable) and exc.retry_after is not None:
                self._delays[n] = min(exc.retry_after, self.policy.retry_after_cap_s)
            else:
                self._delays[n] = float(self._backoff(state))
        return self._delays[n]

    def stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        if self._delay(state) >= self.deadline.remaining():
            self.gave_up_for_deadline = True
            return True
        return False

    def wait(self, state: RetryCallState) -> float:
        return self._delay(state)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value (delta-seconds or an HTTP date); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    wall = time.time() if now is None else now
    return max(0.0, when.timestamp() - wall)


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


class Http:
    """One request at a time through ``client``, bounded by the semaphore and the deadline."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        deadline: Deadline,
        semaphore: asyncio.Semaphore,
        retry: RetryPolicy,
        plain_http_ok: Callable[[httpx.URL], bool],
    ) -> None:
        self.client = client
        self.deadline = deadline
        self.semaphore = semaphore
        self.retry = retry
        self._plain_http_ok = plain_http_ok
        #: Number of HTTP exchanges sent (every attempt and redirect hop counts).
        self.requests_sent = 0

    async def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
    ) -> Reply:
        """Send with retries; return the final reply (any status but 429/5xx after retries).

        Raises :class:`FetchError` when retries or the deadline are exhausted,
        :class:`SizeLimitError` when a 2xx body is larger than ``max_bytes``.
        """
        plan = _Plan(self.retry, self.deadline)
        retrying = AsyncRetrying(
            stop=plan.stop,
            wait=plan.wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self.deadline.sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self.deadline.check(what)
                    return await self._follow(method, url, headers, max_bytes, what)
        except _Retryable as exc:
            n = retrying.statistics.get("attempt_number", 1)
            why = (
                "the next retry would pass the run's deadline"
                if plan.gave_up_for_deadline
                else f"gave up after {n} attempt(s)"
            )
            raise FetchError(
                f"{what}: {exc.message}; {why}",
                hint="the registry is unreachable or overloaded; retry later",
            ) from None
        raise AssertionError("unreachable: tenacity neither returned nor raised")

    async def _follow(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
    ) -> Reply:
        origin = url
        current = url
        sent_headers = dict(headers)
        for _hop in range(MAX_REDIRECTS + 1):
            reply = await self._exchange(method, current, sent_headers, max_bytes, what)
            location = reply.headers.get("Location")
            if reply.status not in REDIRECT_STATUSES or not location:
                return reply
            target = current.join(location)
            if target.scheme not in ("http", "https"):
                raise FetchError(f"{what}: redirect to a non-HTTP URL {target.scheme}:…")
            if (
                current.scheme == "https"
                and target.scheme == "http"
                and not self._plain_http_ok(target)
            ):
                raise FetchError(
                    f"{what}: the registry redirected from https to plain http ({target.host})",
                    hint="mark the target host insecure in the policy only if that is intended",
                )
            if not same_origin(target, origin):
                # Blob redirects to storage are common; credentials stay with the registry.
                sent_headers = {
                    k: v for k, v in sent_headers.items() if k.lower() != "authorization"
                }
            if reply.status == 303:
                method = "GET"
            current = target
        raise FetchError(f"{what}: more than {MAX_REDIRECTS} redirects")

    async def _exchange(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
    ) -> Reply:
        timeout = self.deadline.remaining()
        if timeout <= 0:
            self.deadline.check(what)
        async with self.semaphore:
            self.requests_sent += 1
            try:
                async with asyncio.timeout(timeout) as scope:
                    try:
                        return await self._send_and_read(method, url, headers, max_bytes, what)
                    except httpx.TimeoutException as exc:
                        raise _Retryable(f"timed out ({type(exc).__name__})") from None
                    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                        raise _Retryable(
                            f"connection failed ({type(exc).__name__}: {exc})"
                        ) from None
            except TimeoutError:
                if scope.expired():
                    raise FetchError(
                        f"{what}: no answer before the run's deadline of "
                        f"{self.deadline.seconds:g}s",
                        hint="the registry is slow or unreachable; retry later",
                    ) from None
                raise

    async def _send_and_read(
        self,
        method: str,
        url: httpx.URL,
        headers: Mapping[str, str],
        max_bytes: int,
        what: str,
    ) -> Reply:
        request = self.client.build_request(method, url, headers=dict(headers))
        response = await self.client.send(request, stream=True, follow_redirects=False)
        try:
            status = response.status_code
            ok = 200 <= status < 300
            cap = max_bytes if ok else ERROR_BODY_MAX_BYTES
            declared = _content_length(response)
            if ok and declared is not None and declared > cap:
                raise SizeLimitError(
                    f"{what}: the registry announces {declared} bytes, more than the "
                    f"limit of {cap}",
                    found=f"{declared} bytes",
                    expected=f"at most {cap} bytes",
                )
            body = await _read_capped(response, cap, truncate=not ok, what=what)
            identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
            if (
                ok
                and identity
                and declared is not None
                and len(body) != declared
                and (method != "HEAD")
            ):
                raise _Retryable(f"truncated body ({len(body)} of {declared} bytes announced)")
        finally:
            await response.aclose()
        if status == 429 or 500 <= status < 600:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(
                f"HTTP {status} from {url.host}",
                retry_after=retry_after if status in (429, 503) else None,
            )
        return Reply(status, response.headers, body, url)


class ShardedTransport(httpx.AsyncBaseTransport):
    """The default transport: several small httpx connection pools instead of one big one.

    httpcore 1.0's pool re-examines every connection, and for each idle one
    counts all connections again, whenever a request starts or ends
    (``AsyncConnectionPool._assign_requests_to_connections``), so its CPU cost
    per request grows with the square of the pool size. Measured with 200
    signed images in a local registry on 2 cores, one pool of 16 connections
    cost about twice the client CPU of pools of 4. Requests go to the pool
    with the fewest in flight; each pool keeps its connections alive.
    """

    def __init__(self, concurrency: int, *, per_pool: int = 4) -> None:
        count = max(1, -(-concurrency // per_pool))
        size = -(-concurrency // count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        context = httpx.create_ssl_context()  # one CA bundle load (honours SSL_CERT_FILE)
        self._pools = [
            httpx.AsyncHTTPTransport(verify=context, limits=limits, retries=0) for _ in range(count)
        ]
        self._in_flight = [0] * count

    @staticmethod
    def usable(environ: Mapping[str, str]) -> bool:
        """False when a proxy is configured: then httpx's own transport handles the proxy."""
        return not any(
            environ.get(name) or environ.get(name.lower())
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._pools)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._in_flight[index] -= 1
            raise
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountedStream(response.stream, self._in_flight, index),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _CountedStream(httpx.AsyncByteStream):
    """A response body that marks its pool's request finished when it is closed."""

    def __init__(self, inner: httpx.AsyncByteStream | httpx.SyncByteStream | object,
                 in_flight: list[int], index: int) -> None:  # fmt: skip
        assert isinstance(inner, httpx.AsyncByteStream)
        self._inner = inner
        self._in_flight = in_flight
        self._index = index
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._in_flight[self._index] -= 1
        await self._inner.aclose()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


async def _read_capped(response: httpx.Response, cap: int, *, truncate: bool, what: str) -> bytes:
    """Read the body; past ``cap`` stop and raise (or, for error bodies, just stop)."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > cap:
            if truncate:
                chunks.append(chunk[: cap - (total - len(chunk))])
                break
            raise SizeLimitError(
                f"{what}: the body is larger than the limit of {cap} bytes; reading stopped",
                expected=f"at most {cap} bytes",
            )
        chunks.append(chunk)
    return b"".join(chunks)
