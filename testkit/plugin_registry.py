"""pytest fixtures: real OCI registries (distribution 2.8.2) and unique repository names.

Session-scoped, so each pytest-xdist worker starts its own registries once;
tests keep out of each other's way with :func:`repo_name`, not by restarting.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from testkit.registry import Registry, start_registry


@pytest.fixture(scope="session")
def registry() -> Iterator[Registry]:
    """A plain registry: anonymous pull and push."""
    reg = start_registry()  # own temp dir, removed on stop
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[Registry]:
    """A token-auth registry: ``reg.username``/``reg.password`` may push, anonymous may pull.

    ``reg.auth`` is the token server; call ``reg.auth.reset()`` before the code
    under test if you assert on ``reg.auth.count(...)``.
    """
    reg = start_registry(token_auth=True)
    try:
        yield reg
    finally:
        reg.stop()


def _slug(text: str) -> str:
    """Lower-case, registry-legal path component (``[a-z0-9]+([._-][a-z0-9]+)*``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "test"


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test, e.g. ``t/test-push-image-3f2a9c1d``."""
    return f"t/{_slug(request.node.name)}-{uuid.uuid4().hex[:8]}"
