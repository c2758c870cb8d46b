"""WWW-Authenticate parsing, scope normalisation, token answers and the token cache."""

from __future__ import annotations

import json

import pytest

from gate.sources.auth import (
    DEFAULT_TOKEN_TTL_S,
    TokenCache,
    normalise_scope,
    parse_token_response,
    parse_www_authenticate,
    pull_scope,
)
from gate.sources.registry_types import RegistryAuthError


def test_bearer_challenge_with_comma_in_quoted_scope() -> None:
    [c] = parse_www_authenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
        'scope="repository:acme/app:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.get("realm") == "https://auth.example.com/token"
    assert c.get("service") == "registry.example.com"
    assert c.get("scope") == "repository:acme/app:pull,push"


def test_several_challenges_and_odd_spacing() -> None:
    got = parse_www_authenticate(
        'Bearer  realm = "https://a/token" , error="insufficient_scope", Basic realm="x"'
    )
    assert [c.scheme for c in got] == ["bearer", "basic"]
    assert got[0].get("error") == "insufficient_scope"
    assert got[1].get("realm") == "x"


def test_basic_and_escaped_quotes_and_tokens() -> None:
    [c] = parse_www_authenticate('BASIC realm="say \\"hi\\"", charset=UTF-8')
    assert c.scheme == "basic" and c.get("realm") == 'say "hi"' and c.get("charset") == "UTF-8"
    assert parse_www_authenticate("") == []
    assert [c.scheme for c in parse_www_authenticate("Negotiate, Basic")] == ["negotiate", "basic"]


def test_scope_normalisation() -> None:
    assert normalise_scope("repository:a/b:push,pull") == "repository:a/b:pull,push"
    assert normalise_scope("repository:b:pull repository:a:pull") == (
        "repository:a:pull repository:b:pull"
    )
    assert pull_scope("acme/app") == "repository:acme/app:pull"


@pytest.mark.parametrize("field", ["token", "access_token"])
def test_token_answers(field: str) -> None:
    token = parse_token_response(json.dumps({field: "abc"}).encode(), realm="r", now=10.0)
    assert token.value == "abc" and token.expires_at == 10.0 + DEFAULT_TOKEN_TTL_S
    assert "abc" not in repr(token)


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b"{}", b'{"token": ""}', b'{"token": "a\\r\\nX-Evil: 1"}']
)
def test_unusable_token_answers(body: bytes) -> None:
    with pytest.raises(RegistryAuthError):
        parse_token_response(body, realm="r", now=0.0)


def test_token_cache_per_scope_with_expiry() -> None:
    cache = TokenCache()
    token = parse_token_response(b'{"token":"t","expires_in":30}', realm="r", now=0.0)
    cache.put(TokenCache.key("r", "s", "repository:a:push,pull"), token)
    assert cache.get(TokenCache.key("r", "s", "repository:a:pull,push"), now=29.0) is token
    assert cache.get(TokenCache.key("r", "s", "repository:a:pull,push"), now=30.0) is None
    assert cache.get(TokenCache.key("r", "s", "repository:b:pull"), now=1.0) is None
