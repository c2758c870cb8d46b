import pytest

from gate.policy.match import image_rule_for
from gate.policy.model import Spec
from gate.reference import ReferenceError, normalise_repository_pattern, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("library/nginx", "docker.io/library/nginx:latest"),
        ("acme/app:v1", "docker.io/acme/app:v1"),
        ("index.docker.io/nginx", "docker.io/library/nginx:latest"),
        ("registry-1.docker.io/library/nginx:1", "docker.io/library/nginx:1"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
        ("ghcr.io/acme/app:v1@" + D, "ghcr.io/acme/app:v1@" + D),
        ("ghcr.io/acme/app@" + D, "ghcr.io/acme/app@" + D),
        ("quay.io/a/b/c/d:1.0-rc.1", "quay.io/a/b/c/d:1.0-rc.1"),
        ("docker.io.evil.com/library/nginx", "docker.io.evil.com/library/nginx:latest"),
    ],
)
def test_normalises(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " nginx",
        "ghcr.io/Acme/app",  # uppercase in the path
        "nginx:",
        "nginx@sha256:abc",
        "nginx@sha256:" + "A" * 64,
        "nginx@sha512:" + "a" * 128,  # valid OCI, but the gate verifies and pins sha256 only
        "nginx:1@sha256:" + "a" * 63,
        "ghcr.io//app",
        "ghcr.io/app:" + "x" * 129,
        "ghcr.io/a..b",
        "ghcr.io/-a",
        "ghcr.io/" + "a" * 300,
    ],
)
def test_rejects(text: str) -> None:
    with pytest.raises(ReferenceError) as e:
        parse_reference(text)
    assert e.value.reason == "invalid-reference"


def test_lookalike_host_is_not_docker_hub() -> None:
    spec = Spec.model_validate(
        {"images": [{"match": ["docker.io/library/**"], "exempt": "hub official images"}]}
    )
    assert image_rule_for(spec, parse_reference("nginx")) is not None
    assert image_rule_for(spec, parse_reference("docker.io.evil.com/library/nginx")) is None
    assert image_rule_for(spec, parse_reference("evil.com/docker.io/library/nginx")) is None


def test_patterns_are_normalised_like_references() -> None:
    assert normalise_repository_pattern("nginx") == "docker.io/library/nginx"
    assert normalise_repository_pattern("acme/app") == "docker.io/acme/app"
    assert normalise_repository_pattern("index.docker.io/nginx") == "docker.io/library/nginx"
    assert normalise_repository_pattern("ghcr.io/acme/**") == "ghcr.io/acme/**"
    assert normalise_repository_pattern("**/app") == "**/app"


def test_with_digest_keeps_tag() -> None:
    ref = parse_reference("ghcr.io/acme/app:v1").with_digest(D)
    assert str(ref) == "ghcr.io/acme/app:v1@" + D
    with pytest.raises(ValueError):
        ref.with_digest("sha256:short")
