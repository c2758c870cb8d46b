"""pyhelm3's ``Command`` with the one place it executes helm replaced.

pyhelm3 0.5.8 builds a shell string (``shlex.join``) and runs it with
``asyncio.create_subprocess_shell``, inheriting the gate's whole environment,
with no time limit and no output cap. ``Command.run`` is the single place it
starts helm, so :class:`HardenedHelmCommand` overrides exactly that and runs
the argv through :func:`gate.render.process.run_tool` instead:

* ``exec`` of an argv, no shell;
* a clean environment: ``PATH``, a throw-away ``HOME``, ``LANG=C``, every
  helm directory (cache, config, data, plugins, registry config, repository
  config and cache, content cache) under that home, ``KUBECONFIG`` naming a
  file that does not exist, and HTTP(S) proxies pointing at a closed local
  port, so nothing a template or a values schema asks for can reach the
  network and no developer or sidecar state (repositories, registry logins,
  plugins, a cluster) is visible;
* stdin closed (pyhelm3's own ``template`` feeds values on stdin: we never use
  it, and ``run`` refuses input), a time limit (the process group is killed)
  and an output cap.

The constructor takes none of pyhelm3's cluster options (kubeconfig, context,
API server, token): this command never talks to a cluster.

This module imports pyhelm3 (about 0.2 s, its pydantic models), so
``gate.render.helm`` imports it only when a chart is rendered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pyhelm3 import Command

from gate.render.process import run_tool

__all__ = ["HardenedHelmCommand", "helm_environment"]

#: The discard port: a proxy that refuses every connection.
_CLOSED_PROXY = "http://127.0.0.1:9"

_T = TypeVar("_T")


def helm_environment(home: Path) -> dict[str, str]:
    """The variables helm runs with (``run_tool`` adds ``PATH`` and ``LANG``)."""
    return {
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "HELM_PLUGINS": str(home / "plugins"),
        "HELM_REGISTRY_CONFIG": str(home / "config" / "registry" / "config.json"),
        "HELM_REPOSITORY_CONFIG": str(home / "config" / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(home / "cache" / "repository"),
        "HELM_CONTENT_CACHE": str(home / "cache" / "content"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "KUBECONFIG": str(home / "no-kubeconfig"),  # never created: no cluster
        "DOCKER_CONFIG": str(home / "docker"),
        "HTTP_PROXY": _CLOSED_PROXY,
        "HTTPS_PROXY": _CLOSED_PROXY,
        "ALL_PROXY": _CLOSED_PROXY,
        "http_proxy": _CLOSED_PROXY,
        "https_proxy": _CLOSED_PROXY,
        "all_proxy": _CLOSED_PROXY,
        "NO_PROXY": "",
        "no_proxy": "",
        "NO_COLOR": "1",
    }


class HardenedHelmCommand(Command):  # type: ignore[misc]  # pyhelm3 ships no type hints
    """A pyhelm3 ``Command`` whose ``run`` is ``run_tool``: exec, clean env, limits."""

    def __init__(
        self,
        *,
        executable: str,
        home: Path,
        cwd: Path,
        timeout_s: float,
        max_output_bytes: int,
    ) -> None:
        super().__init__(executable=executable)
        self._home = home
        self._cwd = cwd
        self._timeout_s = timeout_s
        self._max_output_bytes = max_output_bytes
        self._env = helm_environment(home)

    @property
    def environment(self) -> Mapping[str, str]:
        return dict(self._env)

    async def run(self, command: Sequence[Any], input: bytes | None = None) -> bytes:
        """Run ``helm <command>``; pyhelm3's signature, run_tool's containment."""
        if input is not None:
            raise TypeError("HardenedHelmCommand.run: stdin is closed; pass values as files")
        for name in ("cache", "config", "data", "plugins"):
            os.makedirs(self._home / name, exist_ok=True)
        argv = [self._executable, *(str(part) for part in command)]
        return run_tool(
            argv,
            cwd=self._cwd,
            timeout_s=self._timeout_s,
            max_output_bytes=self._max_output_bytes,
            env_extra=self._env,
        )
