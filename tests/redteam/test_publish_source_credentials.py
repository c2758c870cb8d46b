"""Attack: credentials in the checkout's origin URL reach the published artifact.

``gate publish`` puts the source URL (``--source``, else ``remote.origin.url``)
into the public ``org.opencontainers.image.source`` annotation and stripped only
``user:password@`` after a full parse:

* a token in the query (``?access_token=…``, GitLab's ``?private_token=…``) was
  published as it was;
* a port that does not parse (``https://bot:tok@host:x/``, which git keeps in its
  config) raised ValueError: exit 4 before anything was verified;
* a host that does not parse (``https://bot:tok@[host/``) came back unchanged,
  password included.

Now the user info, query and fragment never reach the annotation, and an unparsable
URL is left out.
"""

from __future__ import annotations

import pytest

from gate.flux import SOURCE_ANNOTATION
from testkit import oci
from tests.integration.test_publish_registry import World, _git, _publish, w

__all__ = ["w"]

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("origin", "published"),
    [
        (
            "https://git.example.com/acme/deploy.git?private_token=s3cret",
            "https://git.example.com/acme/deploy.git",
        ),
        ("https://bot:s3cret@git.example.com:x/acme/deploy.git", None),
        ("https://bot:s3cret@[git.example.com/acme/deploy.git", None),
        (
            "https://git.example.com/acme/deploy.git#s3cret",
            "https://git.example.com/acme/deploy.git",
        ),
    ],
)
def test_origin_credentials_are_not_published(
    w: World, capsys: pytest.CaptureFixture[str], origin: str, published: str | None
) -> None:
    src = w.source(w.signed_image("v1"))
    _git(src, "remote", "add", "origin", origin)
    assert _publish(w, src) == 0
    digest = capsys.readouterr().out.strip().rpartition("@")[2]
    manifest = oci.get_manifest(w.registry, w.target_repo, digest)
    assert b"s3cret" not in manifest.data
    annotations = manifest.json()["annotations"]
    if published is None:
        assert (
            SOURCE_ANNOTATION not in annotations or "s3cret" not in annotations[SOURCE_ANNOTATION]
        )
    else:
        assert annotations[SOURCE_ANNOTATION] == published
