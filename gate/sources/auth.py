"""Registry authentication: ``WWW-Authenticate`` challenges, token scopes, the token cache.

The flow (distribution's token spec, https://distribution.github.io/distribution/spec/auth/token/):
a request answered ``401`` with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``
is repeated with ``Authorization: Bearer <token>``, the token got from
``GET <realm>?service=<service>&scope=<scope>`` (Basic credentials for the
registry host sent along when configured); the answer carries ``token`` or
``access_token`` and optionally ``expires_in``. Tokens are cached per
(realm, service, scope), scope actions compared sorted. A ``Basic`` challenge is
answered with the configured credentials, sent pre-emptively afterwards.

This module holds the pure parts; the HTTP round trips, for the reading and
the pushing client alike, are in :mod:`gate.sources.registry_auth`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gate.sources.registry_types import RegistryAuthError

DEFAULT_TOKEN_TTL_S = 60.0  # the token spec's default when expires_in is absent
MIN_TOKEN_TTL_S = 1.0
MAX_TOKEN_BYTES = 64 * 1024

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*")


@dataclass(frozen=True)
class Challenge:
    """One auth challenge: the scheme (lower case) and its parameters (names lower case)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str) -> str | None:
        return self.params.get(name)


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _read_value(text: str, i: int) -> tuple[str, int]:
    """A quoted-string (with backslash escapes) or a token, starting at ``i``."""
    if i < len(text) and text[i] == '"':
        out: list[str] = []
        i += 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        return "".join(out), i + 1
    start = i
    while i < len(text) and text[i] not in ", \t":
        i += 1
    return text[start:i], i


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (RFC 9110 §11.6.1).

    Several challenges may share one header (``Bearer realm="…",scope="a,b", Basic realm="…"``);
    commas inside quoted values do not split. Malformed input yields what could
    be parsed; the caller decides whether that is enough.
    """
    challenges: list[Challenge] = []
    i = 0
    text = header.strip()
    while i < len(text):
        i = _skip_ws(text, i)
        while i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
        match = _SCHEME.match(text, i)
        if match is None:
            break
        scheme = match.group(0).lower()
        i = match.end()
        params: dict[str, str] = {}
        while True:
            j = _skip_ws(text, i)
            name_match = _SCHEME.match(text, j)
            if name_match is None:
                i = j
                break
            k = _skip_ws(text, name_match.end())
            if k >= len(text) or text[k] != "=":
                # Not ``name=``: the next challenge's scheme (a token68 is ignored).
                i = j
                break
            value, i = _read_value(text, _skip_ws(text, k + 1))
            params.setdefault(name_match.group(0).lower(), value)
            i = _skip_ws(text, i)
            if i < len(text) and text[i] == ",":
                i += 1
                continue
            break
        challenges.append(Challenge(scheme, MappingProxyType(params)))
    return challenges


def normalise_scope(scope: str) -> str:
    """Each ``type:name:actions`` item with actions sorted and deduplicated; items sorted.

    distribution lists actions in no fixed order (``pull,push`` / ``push,pull``).
    """
    items: list[str] = []
    for item in scope.split():
        kind, _, rest = item.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            items.append(item)
            continue
        items.append(f"{kind}:{name}:{','.join(sorted(set(filter(None, actions.split(',')))))}")
    return " ".join(sorted(items))


def repository_scope(repository: str, actions: str) -> str:
    """The scope ``repository:<repository>:<actions>`` (``repository`` is the path without host)."""
    return f"repository:{repository}:{actions}"


def pull_scope(repository: str) -> str:
    """The scope a read of ``repository`` (path without host) needs."""
    return repository_scope(repository, "pull")


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: float


def parse_token_response(body: bytes, *, realm: str, now: float) -> Token:
    """The token from a token endpoint's JSON answer (``token`` or ``access_token``)."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise RegistryAuthError(
            f"token endpoint {realm} answered with something not JSON"
        ) from None
    if not isinstance(value, dict):
        raise RegistryAuthError(f"token endpoint {realm} answered with JSON that is not an object")
    token = value.get("token") or value.get("access_token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise RegistryAuthError(
            f"token endpoint {realm} answered without a usable token",
            expected="a JSON object with 'token' or 'access_token'",
        )
    expires_in = value.get("expires_in")
    ttl = (
        float(expires_in)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else DEFAULT_TOKEN_TTL_S
    )
    return Token(token, now + max(ttl, MIN_TOKEN_TTL_S))


class TokenCache:
    """Bearer tokens per (realm, service, normalised scope); expired tokens are not returned."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, str], Token] = {}

    @staticmethod
    def key(realm: str, service: str | None, scope: str) -> tuple[str, str, str]:
        return realm, service or "", normalise_scope(scope)

    def get(self, key: tuple[str, str, str], *, now: float) -> Token | None:
        token = self._tokens.get(key)
        if token is None or token.expires_at <= now:
            return None
        return token

    def put(self, key: tuple[str, str, str], token: Token) -> None:
        self._tokens[key] = token

    def drop(self, key: tuple[str, str, str]) -> None:
        self._tokens.pop(key, None)
