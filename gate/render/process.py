"""Run a rendering tool (kubectl, kustomize, helm) as a contained subprocess.

The tools read untrusted input (the source under review), so:

* ``exec`` of an argv, never a shell: nothing in a path or value is parsed
  as shell syntax;
* a clean environment (``PATH``, a throw-away ``HOME``, ``LANG=C`` and the
  caller's explicit extras): registry tokens, cloud credentials, ``KUBECONFIG``
  or ``HELM_*`` settings of the gate's own process are never visible to a
  template or plugin, and a tool cannot pick up ``~/.config`` state;
* stdin closed: a tool that prompts fails instead of hanging;
* its own process group, killed as a whole on timeout and after exit, so a
  plugin that forks a background process leaves nothing behind
  (``render-timeout``). A child that calls ``setsid`` itself escapes the
  group: the container / sidecar boundary is the backstop for that;
* an output cap: reading stops and the group is killed as soon as stdout
  exceeds it (``SizeLimitError``), so a chart that loops cannot fill memory.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from gate.errors import RenderError, SizeLimitError

__all__ = ["STDERR_EXCERPT_CHARS", "run_tool"]

#: How much of a failing tool's stderr goes into the error (the tail: the
#: actual error line comes last).
STDERR_EXCERPT_CHARS = 2000
_STDERR_KEEP_BYTES = 64 * 1024
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHUNK = 64 * 1024
# After the tool itself exits, how long to drain output a straggler still
# holds open before the group is killed.
_EXIT_GRACE_S = 0.5


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    env_extra: Mapping[str, str] | None = None,
) -> bytes:
    """Run ``argv`` and return its stdout; raise on failure, timeout or too much output."""
    if not argv:
        raise TypeError("run_tool: empty argv")
    tool = Path(argv[0]).name
    with tempfile.TemporaryDirectory(prefix="gate-tool-home-") as home:
        env = {"PATH": os.environ.get("PATH") or _DEFAULT_PATH, "HOME": home, "LANG": "C"}
        env.update(env_extra or {})
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group, see _kill_group
                close_fds=True,
            )
        except OSError as exc:
            raise RenderError(
                f"cannot start {tool}: {exc.strerror or exc}",
                reason="renderer-unavailable",
                found=str(argv[0]),
                hint="install the tool (scripts/bootstrap.sh) or put it on PATH",
            ) from None
        try:
            stdout, stderr = _collect(proc, tool, time.monotonic() + timeout_s, max_output_bytes)
        finally:
            # Kill the group while the leader is still unreaped: its pid (the
            # group id) cannot have been reused by an unrelated process yet.
            _kill_group(proc)
            proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
    if proc.returncode != 0:
        excerpt = _excerpt(stderr)
        status = (
            f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
        )
        raise RenderError(
            f"{tool} failed ({status}): {excerpt}" if excerpt else f"{tool} failed ({status})",
            reason="render-failed",
            found=excerpt or None,
            hint="run the same command locally on this revision to see the full error",
        )
    return stdout


def _collect(
    proc: subprocess.Popen[bytes], tool: str, deadline: float, max_output_bytes: int
) -> tuple[bytes, bytes]:
    stdout = bytearray()
    stderr = bytearray()
    assert proc.stdout is not None and proc.stderr is not None
    pipes: dict[int, IO[bytes]] = {
        proc.stdout.fileno(): proc.stdout,
        proc.stderr.fileno(): proc.stderr,
    }
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd, pipe in pipes.items():
            os.set_blocking(fd, False)
            selector.register(pipe, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                raise _timeout(tool)
            if exited_at is None and _has_exited(proc):
                exited_at = now
            if exited_at is not None and now - exited_at > _EXIT_GRACE_S:
                break  # the tool is done; whoever still holds the pipes is a straggler
            wait = min(deadline - now, 0.1 if exited_at is not None else 1.0)
            for key, _ in selector.select(timeout=wait):
                fd = key.fd
                try:
                    chunk = os.read(fd, _CHUNK)
                except BlockingIOError:  # pragma: no cover - spurious wake-up
                    continue
                if not chunk:
                    selector.unregister(key.fileobj)
                    continue
                if key.fileobj is proc.stdout:
                    stdout += chunk
                    if len(stdout) > max_output_bytes:
                        raise SizeLimitError(
                            f"{tool} wrote more than {max_output_bytes} bytes; stopped",
                            reason="size-limit",
                            found=f"more than {max_output_bytes} bytes of output",
                            expected=f"at most {max_output_bytes} bytes",
                            hint="check the source for a loop or an unexpectedly large input",
                        )
                else:
                    stderr += chunk
                    if len(stderr) > 2 * _STDERR_KEEP_BYTES:  # keep the tail: errors come last
                        del stderr[:-_STDERR_KEEP_BYTES]
    remaining = deadline - time.monotonic()
    if not _wait_exit(proc, remaining):
        raise _timeout(tool)
    return bytes(stdout), bytes(stderr)


def _has_exited(proc: subprocess.Popen[bytes]) -> bool:
    """Has the tool exited? Without reaping it (WNOWAIT), see run_tool's finally."""
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # pragma: no cover - already reaped
        return True
    return info is not None


def _wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    end = time.monotonic() + max(timeout_s, 0.0)
    while not _has_exited(proc):
        if time.monotonic() >= end:
            return False
        time.sleep(0.01)
    return True


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _timeout(tool: str) -> RenderError:
    return RenderError(
        f"{tool} did not finish in time; killed",
        reason="render-timeout",
        found="still running at the time limit",
        expected="rendering within the time limit",
        hint="a template or plugin may loop; render locally to find it",
    )


def _excerpt(stderr: bytes) -> str:
    """The tail of stderr, printable only.

    Tool errors often quote the source; control characters are dropped so a
    hostile file cannot inject terminal escape sequences into logs or the
    Argo CD UI.
    """
    text = stderr.decode("utf-8", errors="replace")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in text).strip()
    if len(text) > STDERR_EXCERPT_CHARS:
        text = "..." + text[-STDERR_EXCERPT_CHARS:]
    return text
