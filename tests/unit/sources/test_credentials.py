"""Docker config parsing: auths entries, host keys, helpers never run, policy files first."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from gate.sources.credentials import Credentials, CredentialStore, canonical_host
from gate.sources.registry_types import RegistryAuthError


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, value: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("Registry.Example.com", "registry.example.com"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("registry.example.com:443", "registry.example.com:443"),
    ],
)
def test_canonical_host(key: str, host: str) -> None:
    assert canonical_host(key) == host


def test_auth_and_username_password_entries(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.json",
        {
            "auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:pa:ss")},
                "registry.example.com": {"username": "u", "password": "p"},
                "empty.example.com": {},
            }
        },
    )
    store = CredentialStore(docker_config=config)
    assert store.get("docker.io") == Credentials("hub", "pa:ss")
    assert store.get("registry.example.com") == Credentials("u", "p")
    assert store.get("empty.example.com") is None
    assert store.get("other.example.com") is None
    assert "pa:ss" not in repr(store.get("docker.io"))


def test_docker_config_env_and_directory(tmp_path: Path) -> None:
    write(tmp_path / "d" / "config.json", {"auths": {"r.example": {"auth": b64("a:b")}}})
    assert CredentialStore(environ={"DOCKER_CONFIG": str(tmp_path / "d")}).get("r.example") == (
        Credentials("a", "b")
    )
    assert CredentialStore(docker_config=tmp_path / "d").get("r.example") == Credentials("a", "b")
    # The default location may be absent: anonymous.
    assert CredentialStore(environ={"DOCKER_CONFIG": str(tmp_path / "none")}).get("x") is None


def test_policy_file_comes_first(tmp_path: Path) -> None:
    default = write(tmp_path / "default.json", {"auths": {"r.example": {"auth": b64("d:d")}}})
    policy = write(tmp_path / "policy.json", {"auths": {"r.example": {"auth": b64("p:p")}}})
    store = CredentialStore({"r.example": policy}, docker_config=default)
    assert store.get("r.example") == Credentials("p", "p")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps([]),
        json.dumps({"auths": []}),
        json.dumps({"auths": {"r.example": {"auth": "%%%"}}}),
        json.dumps({"auths": {"r.example": {"auth": b64("no-colon")}}}),
    ],
)
def test_malformed_files_are_auth_errors(tmp_path: Path, content: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(RegistryAuthError):
        CredentialStore(docker_config=path).get("r.example")


def test_credential_helpers_are_never_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran"
    helper = tmp_path / "docker-credential-evil"
    helper.write_text(f"#!/bin/sh\ntouch {marker}\n")
    helper.chmod(0o755)
    config = write(
        tmp_path / "config.json",
        {"credsStore": "evil", "credHelpers": {"r.example": "evil"}, "auths": {}},
    )
    store = CredentialStore(
        docker_config=config, environ={"PATH": str(tmp_path), "DOCKER_CONFIG": ""}
    )
    with caplog.at_level(logging.WARNING, logger="gate.sources.credentials"):
        assert store.get("r.example") is None
        assert store.get("r.example") is None
    assert not marker.exists()
    assert sum("never runs credential helpers" in r.message for r in caplog.records) == 1
