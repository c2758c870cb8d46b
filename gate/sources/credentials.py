"""Registry credentials from Docker config files (``auths`` only, never credential helpers).

Where credentials come from, per registry host (the first that has an entry wins):

1. the file a policy's ``registries[].credentials`` names for that host
   (Docker config format);
2. the Docker config: ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``
   (or the path given to :class:`CredentialStore`).

An ``auths`` entry gives ``auth`` (base64 ``user:password``) or ``username`` and
``password``. Keys may be written as hosts or URLs (``https://index.docker.io/v1/``,
``registry.example.com``, ``http://127.0.0.1:5000/v2/``); they are compared by
host and port, with Docker Hub's aliases folded into ``docker.io``.

Credential helpers (``credsStore``, ``credHelpers``) are **never** run: the gate
does not execute programs named in a configuration file, and the sidecar has
none. A host that only a helper could serve is treated as anonymous, with a
warning in the log. ``identitytoken`` and ``registrytoken`` (OAuth refresh and
raw bearer tokens) are not supported either.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gate.sources.registry_types import RegistryAuthError

log = logging.getLogger(__name__)

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
MAX_CONFIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Credentials:
    """A user name and password (the password never appears in a repr)."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def canonical_host(key: str) -> str:
    """``https://index.docker.io/v1/`` → ``docker.io``; ``http://h:5000/v2/`` → ``h:5000``."""
    text = key.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0].lower()
    return DOCKER_HUB if text in _HUB_ALIASES else text


def default_docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    env = os.environ if environ is None else environ
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _entry_credentials(entry: object, *, source: str, key: str) -> Credentials | None:
    if not isinstance(entry, dict):
        raise RegistryAuthError(f"{source}: auths[{key!r}] is not an object")
    auth = entry.get("auth")
    if auth:
        if not isinstance(auth, str):
            raise RegistryAuthError(f"{source}: auths[{key!r}].auth is not a string")
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise RegistryAuthError(
                f"{source}: auths[{key!r}].auth is not base64 of user:password"
            ) from None
        user, sep, password = decoded.partition(":")
        if not sep or not user:
            raise RegistryAuthError(f"{source}: auths[{key!r}].auth is not user:password")
        return Credentials(user, password)
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(secret, str):
        return Credentials(username, secret)
    return None


@dataclass(frozen=True)
class DockerConfig:
    """The parts of one Docker config file the gate reads."""

    path: Path
    auths: Mapping[str, Credentials]
    #: Hosts for which the file names a credential helper (never run; see module doc).
    helper_hosts: frozenset[str] = frozenset()
    has_creds_store: bool = False

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool) -> DockerConfig:
        """Read ``path``; a missing file is empty when ``missing_ok``, else an error."""
        source = str(path)
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_CONFIG_BYTES + 1)
        except FileNotFoundError:
            if missing_ok:
                return cls(path, {})
            raise RegistryAuthError(
                f"registry credentials file {source} does not exist",
                hint="mount the file the policy names, or remove 'credentials' from the policy",
            ) from None
        except OSError as exc:
            raise RegistryAuthError(
                f"cannot read registry credentials file {source}: {exc.strerror}"
            ) from None
        if len(data) > MAX_CONFIG_BYTES:
            raise RegistryAuthError(f"{source}: larger than {MAX_CONFIG_BYTES} bytes")
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise RegistryAuthError(f"{source}: not valid JSON") from None
        if not isinstance(value, dict):
            raise RegistryAuthError(f"{source}: not a JSON object")
        return cls.parse(value, path=path)

    @classmethod
    def parse(cls, value: Mapping[str, object], *, path: Path) -> DockerConfig:
        source = str(path)
        auths_value = value.get("auths")
        if auths_value is None:
            auths_value = {}
        if not isinstance(auths_value, dict):
            raise RegistryAuthError(f"{source}: 'auths' is not an object")
        auths: dict[str, Credentials] = {}
        for key, entry in auths_value.items():
            creds = _entry_credentials(entry, source=source, key=key)
            host = canonical_host(key)
            # An exact host key beats a URL-shaped one for the same host.
            if creds is not None and (host not in auths or key.strip().lower() == host):
                auths[host] = creds
        helpers = value.get("credHelpers") or {}
        helper_hosts = (
            frozenset(canonical_host(k) for k in helpers)
            if isinstance(helpers, dict)
            else frozenset()
        )
        return cls(path, auths, helper_hosts, bool(value.get("credsStore")))


class CredentialStore:
    """Credentials per registry host, read lazily and once.

    ``policy_files`` maps a host (as the policy writes it) to the credentials
    file the policy names; ``docker_config`` overrides the default Docker
    config path (a ``config.json`` file or a directory holding one).
    """

    def __init__(
        self,
        policy_files: Mapping[str, str | Path] | None = None,
        *,
        docker_config: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._policy_files = {canonical_host(h): Path(p) for h, p in (policy_files or {}).items()}
        if docker_config is None:
            self._default = default_docker_config_path(environ)
            self._default_missing_ok = True
        else:
            path = Path(docker_config)
            self._default = path / "config.json" if path.is_dir() else path
            self._default_missing_ok = False
        self._loaded: dict[Path, DockerConfig] = {}
        self._warned: set[str] = set()

    def _load(self, path: Path, *, missing_ok: bool) -> DockerConfig:
        if path not in self._loaded:
            self._loaded[path] = DockerConfig.load(path, missing_ok=missing_ok)
        return self._loaded[path]

    def get(self, host: str) -> Credentials | None:
        """The credentials for ``host`` (``docker.io`` or ``registry:port``), or None."""
        host = canonical_host(host)
        policy_file = self._policy_files.get(host)
        if policy_file is not None:
            creds = self._load(policy_file, missing_ok=False).auths.get(host)
            if creds is not None:
                return creds
        config = self._load(self._default, missing_ok=self._default_missing_ok)
        creds = config.auths.get(host)
        helper = host in config.helper_hosts or config.has_creds_store
        if creds is None and helper and host not in self._warned:
            self._warned.add(host)
            log.warning(
                "%s names a credential helper for %s; the gate never runs credential "
                "helpers, so requests to %s are anonymous (put credentials in 'auths' "
                "or in the file the policy names)",
                config.path,
                host,
                host,
            )
        return creds
