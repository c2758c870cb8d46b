"""A real OCI registry for tests and ``make demo``: Debian's ``docker-registry`` 2.8.2.

Each call starts a private registry on a free loopback port with its own
temporary storage, so parallel test workers (pytest-xdist) never share state.
The registry has no referrers API; the gate's tag-schema fallback is what it
exercises. With ``token_auth=True`` it trusts a :class:`~testkit.tokenserver.TokenServer`
running in this process, so the gate's Bearer-token flow runs against the real thing.

Processes never outlive the test session: :meth:`Registry.stop` terminates
then kills, an ``atexit`` hook stops whatever is still running, and on Linux
the child gets ``PR_SET_PDEATHSIG`` so even a SIGKILLed pytest takes its
registries with it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from testkit.tokenserver import ALL_ACTIONS, TokenField, TokenServer, start_token_server

REGISTRY_BINARY = os.environ.get("GATE_TEST_REGISTRY_BINARY", "docker-registry")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
BIND_ATTEMPTS = 5
DEFAULT_USER = "gate-test"
DEFAULT_PASSWORD = "gate-test-password"  # a throwaway test credential


class RegistryError(RuntimeError):
    """The test registry could not be started (the message carries its log)."""


@dataclass(eq=False)
class Registry:
    """A running registry. ``host`` is ``127.0.0.1:PORT``; ``url`` is ``http://`` + host."""

    host: str
    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    storage: Path
    log_path: Path
    auth: TokenServer | None = None
    # Credentials accepted by the token server (None for an anonymous registry).
    username: str | None = None
    password: str | None = None
    _owns_workdir: bool = field(default=True, repr=False)
    _cleanups: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    def ref(self, repo: str, tag_or_digest: str | None = None) -> str:
        """An image reference in this registry: ``127.0.0.1:P/repo:tag`` or ``…@sha256:…``."""
        if tag_or_digest is None:
            return f"{self.host}/{repo}"
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{self.host}/{repo}{sep}{tag_or_digest}"

    def log(self) -> str:
        """The registry's combined stdout/stderr so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def is_running(self) -> bool:
        return self.process.poll() is None

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on stop (e.g. close a client cached for this registry)."""
        self._cleanups.append(fn)

    def stop(self) -> None:
        """Terminate (then kill) the registry and its token server; remove temp dirs. Idempotent."""
        while self._cleanups:
            self._cleanups.pop()()
        _stop_process(self.process)
        if self.auth is not None:
            self.auth.stop()
        _LIVE.discard(self)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


# --- process lifetime -------------------------------------------------------------------------

_LIVE: set[Registry] = set()


def _stop_all() -> None:
    for registry in list(_LIVE):
        registry.stop()


atexit.register(_stop_all)


def _stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def _die_with_parent(libc: ctypes.CDLL, parent: int) -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGTERM when the parent thread dies (Linux only)."""

    def hook() -> None:
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return hook


def _load_libc() -> ctypes.CDLL | None:
    # Loaded up front: the pre-exec hook must not import or allocate much in the forked child.
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _load_libc()


def _preexec() -> Callable[[], None] | None:
    """PDEATHSIG fires when the *thread* that forked exits, so use it only from the main thread."""
    if _LIBC is None or not hasattr(_LIBC, "prctl"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    return _die_with_parent(_LIBC, os.getpid())


# --- configuration ----------------------------------------------------------------------------


def free_port() -> int:
    """A port that was free a moment ago (the registry cannot take an fd; we retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_config(
    port: int, storage: Path, auth: TokenServer | None, root_bundle: Path | None
) -> dict[str, object]:
    """The config.yml contents. No debug server (no ``http.debug``), no health poller."""
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "gate-test-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"127.0.0.1:{port}",
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }
    if auth is not None:
        assert root_bundle is not None
        config["auth"] = {
            "token": {
                "realm": auth.realm,
                "service": auth.service,
                "issuer": auth.issuer,
                "rootcertbundle": str(root_bundle),
            }
        }
    return config


def _clean_env() -> dict[str, str]:
    """Drop REGISTRY_* variables: distribution lets them override any config field."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}


# --- start ------------------------------------------------------------------------------------


def _spawn(config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which(REGISTRY_BINARY)
    if binary is None:
        raise RegistryError(
            f"{REGISTRY_BINARY!r} not found on PATH; run scripts/bootstrap.sh "
            "(Debian package docker-registry)"
        )
    with log_path.open("ab") as log:
        # A log file, not a pipe: a pipe nobody drains would block the registry when full.
        return subprocess.Popen(
            [binary, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_clean_env(),
            close_fds=True,
            preexec_fn=_preexec(),  # only prctl and getppid, see _die_with_parent
        )


def _wait_ready(proc: subprocess.Popen[bytes], url: str, deadline: float) -> bool:
    """True once ``GET /v2/`` answers as a registry; False if the process exited first."""
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                resp = client.get(f"{url}/v2/")
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            api = resp.headers.get("Docker-Distribution-Api-Version", "")
            # 401 is the ready answer of a token-auth registry.
            if resp.status_code in (200, 401) and api.startswith("registry/2"):
                return proc.poll() is None
            time.sleep(0.05)
    return False


def _bind_failed(log_path: Path) -> bool:
    return "address already in use" in log_path.read_text(errors="replace")


def start_registry(
    tmpdir: Path | None = None,
    *,
    token_auth: bool = False,
    username: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    anonymous_actions: Iterable[str] = ("pull",),
    user_actions: Iterable[str] = ALL_ACTIONS,
    token_ttl_seconds: int = 300,
    token_field: TokenField = "both",
    timeout: float = START_TIMEOUT_S,
) -> Registry:
    """Start a registry on a free loopback port and wait until ``/v2/`` answers.

    ``tmpdir``: where config, storage and log go; when given, the caller owns
    it and it is kept after stop (handy to inspect storage). Otherwise a fresh
    temporary directory is used and removed on stop.
    ``token_auth``: also start a token server; ``username``/``password`` may
    push, anonymous token requests get ``anonymous_actions`` (``()`` = nothing);
    ``token_field`` picks the JSON field(s) the token comes in (``token``,
    ``access_token`` or ``both``), since clients must accept either.
    """
    owns = tmpdir is None
    workdir = (
        Path(tmpdir) if tmpdir is not None else Path(tempfile.mkdtemp(prefix="gate-registry-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    auth: TokenServer | None = None
    root_bundle: Path | None = None
    if token_auth:
        auth = start_token_server(
            users={username: password},
            anonymous_actions=anonymous_actions,
            user_actions=user_actions,
            ttl_seconds=token_ttl_seconds,
            token_field=token_field,
        )
        root_bundle = auth.write_root_bundle(workdir / "token-root.pem")
    try:
        return _start_with_retries(
            workdir, storage, auth, root_bundle, timeout, owns, username, password
        )
    except BaseException:
        if auth is not None:
            auth.stop()
        if owns:
            shutil.rmtree(workdir, ignore_errors=True)
        raise


def _start_with_retries(
    workdir: Path,
    storage: Path,
    auth: TokenServer | None,
    root_bundle: Path | None,
    timeout: float,
    owns: bool,
    username: str,
    password: str,
) -> Registry:
    deadline = time.monotonic() + timeout
    config_path = workdir / "config.yml"
    log_path = workdir / "registry.log"
    for _attempt in range(BIND_ATTEMPTS):
        port = free_port()
        config = registry_config(port, storage, auth, root_bundle)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        log_path.write_bytes(b"")
        proc = _spawn(config_path, log_path)
        host = f"127.0.0.1:{port}"
        registry = Registry(
            host=host,
            url=f"http://{host}",
            process=proc,
            workdir=workdir,
            storage=storage,
            log_path=log_path,
            auth=auth,
            username=username if auth is not None else None,
            password=password if auth is not None else None,
            _owns_workdir=owns,
        )
        _LIVE.add(registry)
        try:
            ready = _wait_ready(proc, registry.url, deadline)
        except BaseException:  # e.g. Ctrl-C while waiting: leave nothing running
            _stop_process(proc)
            _LIVE.discard(registry)
            raise
        if ready:
            return registry
        _stop_process(proc)
        _LIVE.discard(registry)
        if not _bind_failed(log_path) or time.monotonic() >= deadline:
            break
    raise RegistryError(_failure_message(proc, registry, timeout))


def _failure_message(proc: subprocess.Popen[bytes], registry: Registry, timeout: float) -> str:
    # We stopped it (SIGTERM/SIGKILL) only when it was still silent at the deadline.
    stopped_by_us = proc.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    what = (
        f"did not answer GET /v2/ within {timeout:.0f}s"
        if stopped_by_us
        else f"exited with code {proc.returncode} before answering GET /v2/"
    )
    return f"docker-registry on {registry.host} {what}; its log:\n{registry.log()[-4000:]}"


@contextlib.contextmanager
def running_registry(
    tmpdir: Path | None = None, *, token_auth: bool = False, **kwargs: Any
) -> Iterator[Registry]:
    """``with running_registry() as reg:`` start, yield, always stop (same arguments)."""
    registry = start_registry(tmpdir, token_auth=token_auth, **kwargs)
    try:
        yield registry
    finally:
        registry.stop()
