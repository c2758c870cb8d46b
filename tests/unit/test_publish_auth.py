"""The push client's auth, where it used to differ from the verifying client's.

Both clients now share :class:`gate.sources.registry_auth.RegistryAuth`; these
pin what the push client gained from the verifying client's copy: a token is
sent pre-emptively only to requests of its own scope, not "whatever worked
last on this host" (which sent repository a's token with requests for b).
"""

from __future__ import annotations

import asyncio

import httpx

from gate.sources.publish import push_scope
from tests.unit.test_publish_push import ARTIFACT, HOST, FakeRegistry, _client

REALM = "https://auth.test/token"


def _token_server(fake: FakeRegistry, scopes: list[str]) -> None:
    """Tokens named after their scope; the registry accepts a token only for its scope."""

    def auth(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "auth.test":
            scope = request.url.params["scope"]
            scopes.append(scope)
            return httpx.Response(200, json={"token": f"t-{len(scopes)}-{scope}"})
        repository = request.url.path.removeprefix("/v2/").split("/blobs/")[0]
        repository = repository.split("/manifests/")[0]
        wanted = push_scope(repository)
        sent = request.headers.get("Authorization", "")
        if not (sent.startswith("Bearer t-") and sent.endswith("-" + wanted)):
            challenge = f'Bearer realm="{REALM}",service="{HOST}"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return None

    fake.fault = auth


def test_a_token_is_sent_only_to_requests_of_its_scope() -> None:
    fake = FakeRegistry()
    scopes: list[str] = []
    _token_server(fake, scopes)
    sent: list[tuple[str, str | None]] = []
    inner = fake.fault
    assert inner is not None

    def record(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == HOST:
            sent.append((request.url.path, request.headers.get("Authorization")))
        return inner(request)

    fake.fault = record

    async def go() -> None:
        async with _client(fake) as client:
            await client.push_artifact(f"{HOST}/team/a", ARTIFACT)
            await client.push_artifact(f"{HOST}/team/b", ARTIFACT)

    asyncio.run(go())
    assert scopes == [push_scope("team/a"), push_scope("team/b")]
    for path, authorization in sent:
        if authorization is not None:
            repository = "team/a" if path.startswith("/v2/team/a/") else "team/b"
            assert authorization.endswith("-" + push_scope(repository)), (path, authorization)
