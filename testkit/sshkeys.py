"""Throwaway SSH signing keys for tests, made with the real ssh-keygen.

Keys are unencrypted files in a temporary directory; nothing touches
``~/.ssh`` or an ssh-agent (``SSH_AUTH_SOCK`` is dropped from the environment
of every subprocess, so ``ssh-keygen -Y sign`` can only use the key file).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

SshAlgo = Literal["ed25519", "ecdsa", "rsa"]


def ssh_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SSH_AUTH_SOCK", None)
    env["LC_ALL"] = "C"
    return env


@dataclass(frozen=True)
class SshKey:
    """An SSH key pair on disk."""

    private_path: Path
    principal: str
    algo: str

    @property
    def public_path(self) -> Path:
        return self.private_path.with_name(self.private_path.name + ".pub")

    @property
    def public_line(self) -> str:
        """``<type> <base64>`` (the comment dropped), as a policy would hold it."""
        kind, blob, *_ = self.public_path.read_text().split()
        return f"{kind} {blob}"

    @property
    def fingerprint(self) -> str:
        """``SHA256:...`` as ssh-keygen and git print it."""
        out = subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.public_path)],
            capture_output=True,
            text=True,
            check=True,
            env=ssh_env(),
        ).stdout
        return out.split()[1]

    def allowed_signers_line(
        self,
        principal: str | None = None,
        *,
        namespaces: str | None = "git",
        valid_after: str | None = None,
        valid_before: str | None = None,
    ) -> str:
        """One line of an ``allowed_signers`` file (see ssh-keygen(1)).

        ``valid_after`` / ``valid_before`` take ssh-keygen's time format
        (``YYYYMMDD[HHMM[SS]][Z]``) and make an expired or not-yet-valid key.
        """
        opts = []
        if namespaces:
            opts.append(f'namespaces="{namespaces}"')
        if valid_after:
            opts.append(f'valid-after="{valid_after}"')
        if valid_before:
            opts.append(f'valid-before="{valid_before}"')
        parts = [principal or self.principal]
        if opts:
            parts.append(",".join(opts))
        parts.append(self.public_line)
        return " ".join(parts)

    def sign(self, data: bytes, namespace: str = "git") -> bytes:
        """``ssh-keygen -Y sign``: an armored SSH SIGNATURE over ``data``."""
        return subprocess.run(
            ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(self.private_path)],
            input=data,
            capture_output=True,
            check=True,
            env=ssh_env(),
            timeout=60,
        ).stdout


def write_allowed_signers(path: Path, lines: Iterable[str | SshKey]) -> Path:
    """Write an allowed_signers file from keys (default principal) or raw lines."""
    text = "".join(
        (item.allowed_signers_line() if isinstance(item, SshKey) else item) + "\n" for item in lines
    )
    path.write_text(text)
    return path


def generate_ssh_key(
    directory: Path, name: str, algo: SshAlgo = "ed25519", principal: str | None = None
) -> SshKey:
    """``ssh-keygen -t ALGO -N ''`` into ``directory/name``."""
    path = directory / name
    size = {"ed25519": [], "ecdsa": ["-b", "256"], "rsa": ["-b", "3072"]}[algo]
    principal = principal or f"{name}@example.test"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", algo, *size, "-N", "", "-C", principal, "-f", str(path)],
        capture_output=True,
        check=True,
        env=ssh_env(),
        timeout=60,
    )
    return SshKey(path, principal, algo)


class SshKeyFactory:
    """Makes SSH keys on demand in one temp dir, cached by (name, algo)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sshkeys-"))
        self._keys: dict[tuple[str, str], SshKey] = {}

    def __call__(self, name: str = "signer", algo: SshAlgo = "ed25519") -> SshKey:
        slot = (name, algo)
        if slot not in self._keys:
            self._keys[slot] = generate_ssh_key(self.directory, f"{name}-{algo}", algo)
        return self._keys[slot]

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self._keys.clear()
