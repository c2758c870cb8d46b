"""The test registry: real distribution 2.8.2 on a free port, token auth, no leftovers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from testkit import registry as registry_mod
from testkit.oci import OciClient, RegistryHTTPError, push_image
from testkit.registry import Registry, RegistryError, running_registry, start_registry

pytestmark = pytest.mark.integration


def _pid_gone(pid: int, within: float = 5.0) -> bool:
    """True once no process with ``pid`` exists (zombies count as gone: they no longer run)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_registry_answers_v2_on_a_loopback_port(registry: Registry) -> None:
    assert registry.host.startswith("127.0.0.1:")
    assert registry.url == f"http://{registry.host}"
    resp = httpx.get(f"{registry.url}/v2/", timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    config = (registry.workdir / "config.yml").read_text()
    assert "delete:\n    enabled: true" in config
    assert "debug" not in config


def test_two_registries_run_at_once_and_stop_cleanly(registry: Registry) -> None:
    with running_registry() as other:
        assert other.port != registry.port
        assert httpx.get(f"{other.url}/v2/", timeout=5).status_code == 200
        pid, workdir = other.pid, other.workdir
        assert workdir.is_dir()
    assert _pid_gone(pid)
    assert not workdir.exists()
    other.stop()  # idempotent
    assert httpx.get(f"{registry.url}/v2/", timeout=5).status_code == 200


def test_caller_owned_tmpdir_is_kept(tmp_path: Path) -> None:
    with running_registry(tmp_path) as reg:
        push_image(reg, "kept/image", "v1")
        pid = reg.pid
    assert _pid_gone(pid)
    assert (tmp_path / "storage" / "docker" / "registry" / "v2" / "repositories" / "kept").is_dir()


def test_port_race_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """If someone takes the chosen port before the registry binds it, start on another one."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    real_free_port = registry_mod.free_port
    monkeypatch.setattr(registry_mod, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        with running_registry() as reg:
            assert reg.port != taken.getsockname()[1]
            assert httpx.get(f"{reg.url}/v2/", timeout=5).status_code == 200
    finally:
        taken.close()


def test_start_failure_reports_the_registry_log(monkeypatch: pytest.MonkeyPatch) -> None:
    real_config = registry_mod.registry_config

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        config = real_config(*args, **kwargs)  # type: ignore[arg-type]
        config["storage"] = {"no-such-driver": {}}
        return config

    monkeypatch.setattr(registry_mod, "registry_config", broken)
    before = set(registry_mod._LIVE)
    with pytest.raises(RegistryError, match="no-such-driver"):
        start_registry(timeout=5)
    assert set(registry_mod._LIVE) == before  # the failed process is not tracked (it is gone)


def test_registry_dies_with_a_killed_test_process(tmp_path: Path) -> None:
    """A SIGKILLed pytest runs no atexit hook; PR_SET_PDEATHSIG still takes the registry down."""
    script = textwrap.dedent(
        """
        import sys, time
        from testkit.registry import start_registry
        reg = start_registry()
        print(reg.pid, reg.workdir, flush=True)
        time.sleep(60)
        """
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=root, text=True
    )
    try:
        assert proc.stdout is not None
        pid_text, workdir = proc.stdout.readline().split()
        pid = int(pid_text)
        os.kill(pid, 0)  # running
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert _pid_gone(pid)
    shutil.rmtree(workdir, ignore_errors=True)  # no atexit hook ran: tidy up here


# --- token auth -------------------------------------------------------------------------------


def test_token_registry_challenges_with_bearer(token_registry: Registry) -> None:
    resp = httpx.get(f"{token_registry.url}/v2/", timeout=5)
    assert resp.status_code == 401
    assert token_registry.auth is not None
    assert resp.headers["WWW-Authenticate"].startswith(
        f'Bearer realm="{token_registry.auth.realm}",service="{token_registry.auth.service}"'
    )


def test_token_registry_denies_anonymous_push(token_registry: Registry, repo_name: str) -> None:
    # No token at all.
    resp = httpx.post(f"{token_registry.url}/v2/{repo_name}/blobs/uploads/", timeout=5)
    assert resp.status_code == 401
    # An anonymous token: pull only, so the push is still refused.
    with OciClient(token_registry.url) as anonymous, pytest.raises(RegistryHTTPError) as err:
        push_image(anonymous, repo_name, "v1")
    assert err.value.status_code == 401


def test_token_registry_accepts_push_with_credentials(
    token_registry: Registry, repo_name: str
) -> None:
    assert token_registry.auth is not None
    token_registry.auth.reset()
    with OciClient.for_registry(token_registry) as writer:
        image = push_image(writer, repo_name, "v1")
        push_image(writer, repo_name, "v2", seed=2)
    push_scope = f"repository:{repo_name}:pull,push"
    # One token for the push scope, reused for every later request of that client.
    assert token_registry.auth.count(scope=push_scope, user=token_registry.username) == 1
    # Anonymous clients may pull.
    with OciClient(token_registry.url) as reader:
        assert reader.get_manifest(repo_name, "v1").digest == image.digest
    assert token_registry.auth.count(scope=f"repository:{repo_name}:pull", user=None) == 1


def test_wrong_password_is_refused_by_the_token_server(
    token_registry: Registry, repo_name: str
) -> None:
    with (
        OciClient(token_registry.url, username="gate-test", password="wrong") as client,
        pytest.raises(RegistryHTTPError) as err,
    ):
        client.list_tags(repo_name)
    assert err.value.status_code == 401
    assert token_registry.auth is not None
    assert token_registry.auth.requests[-1].granted is False


def test_anonymous_can_be_denied_everything(repo_name: str) -> None:
    # Also: this token server answers with "access_token" only, which clients must accept.
    with running_registry(token_auth=True, anonymous_actions=(), token_field="access_token") as reg:
        assert reg.auth is not None
        assert "token" not in reg.auth.handle("service=gate-test-registry", None)[1]
        push_image(reg, repo_name, "v1")
        with OciClient(reg.url) as anonymous, pytest.raises(RegistryHTTPError) as err:
            anonymous.get_manifest(repo_name, "v1")
        assert err.value.status_code == 401


def test_expired_token_is_refused(token_registry: Registry, repo_name: str) -> None:
    auth = token_registry.auth
    assert auth is not None
    access: list[dict[str, object]] = [
        {"type": "repository", "name": repo_name, "actions": ["pull"]}
    ]
    url = f"{token_registry.url}/v2/{repo_name}/tags/list"
    good = auth.issue("someone", access)
    expired = auth.issue("someone", access, now=time.time() - 3600)
    wrong_aud = auth.issue("someone", access, audience="other-service")
    assert httpx.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 404
    for token in (expired, wrong_aud):
        assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_token_format_is_what_distribution_expects(token_registry: Registry) -> None:
    """ES256 with x5c = [the root-bundle certificate], raw r||s signature, aud = service."""
    auth = token_registry.auth
    assert auth is not None
    status, body = auth.handle(
        f"service={auth.service}&scope=repository:a/b:pull,push&scope=repository:c:pull", None
    )
    assert status == 200
    token = str(body["token"])
    assert body["access_token"] == token
    header_b64, claims_b64, sig_b64 = token.split(".")
    header = json.loads(_b64url_decode(header_b64))
    claims = json.loads(_b64url_decode(claims_b64))
    assert header["alg"] == "ES256"
    cert = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    assert cert == x509.load_pem_x509_certificate(
        (token_registry.workdir / "token-root.pem").read_bytes()
    )
    sig = _b64url_decode(sig_b64)
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32]), int.from_bytes(sig[32:]))
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    assert claims["aud"] == auth.service
    assert claims["iss"] == auth.issuer
    assert claims["nbf"] <= claims["iat"] < claims["exp"]
    # Anonymous: pull only, and only what was asked for.
    assert claims["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull"]},
        {"type": "repository", "name": "c", "actions": ["pull"]},
    ]


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
