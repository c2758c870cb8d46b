"""Throwaway OpenPGP keys for tests, made with the real gpg.

Every key lives in its own temporary ``GNUPGHOME`` so that a test can sign
with exactly one key and verify against exactly the keys it chose. The home is
only ever passed to subprocesses (``PgpKey.env()``); ``os.environ`` of the test
process is never touched, so a developer's own keyring can neither leak in nor
be modified.

Special keys:
- ``expired=True``: created (and signing) at a faked time in 2020 with a 30-day
  validity, so signatures are good but made by a key that has since expired.
  gpg refuses to sign with an expired key, hence the faked clock in the
  signer's own ``gpg.conf`` only; verifiers see the real clock.
- ``revoked=True``: the key signs normally (its own home does not know about
  the revocation), but the public key it exports carries the revocation, so a
  verifier that imports it sees a revoked key.

Trap worth knowing: ``gpg --verify`` exits 0 for a good signature by an
expired or revoked key (it prints EXPKEYSIG / REVKEYSIG plus VALIDSIG); only
the status lines tell. git turns those into failures, a naive verifier won't.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Algo = Literal["ed25519", "rsa2048", "rsa3072", "rsa4096"]

# A 2020 instant for expired keys: far enough in the past that a 30-day key is
# expired on any machine running these tests.
_EXPIRED_FAKE_TIME = "20200601T000000"


def _new_home(prefix: str) -> Path:
    # Short paths under the system temp dir: gpg-agent's socket path must stay
    # below the ~108 byte sun_path limit.
    home = Path(tempfile.mkdtemp(prefix=prefix))
    home.chmod(0o700)
    return home


def gpg_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A subprocess environment that points gpg at ``home`` and nothing else."""
    env = dict(os.environ if base is None else base)
    env["GNUPGHOME"] = str(home)
    # No pinentry, no tty: batch tools must never hang waiting for a prompt.
    env.pop("GPG_TTY", None)
    env.pop("GPG_AGENT_INFO", None)
    env["LC_ALL"] = "C"
    return env


def run_gpg(
    home: Path, *args: str, input: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run ``gpg --batch`` in ``home``; return the completed process (bytes)."""
    return subprocess.run(
        ["gpg", "--batch", "--no-tty", *args],
        input=input,
        capture_output=True,
        env=gpg_env(home),
        check=check,
        timeout=120,
    )


def kill_agent(home: Path) -> None:
    """Stop the gpg-agent (and friends) of this home only."""
    subprocess.run(
        ["gpgconf", "--kill", "all"],
        env=gpg_env(home),
        capture_output=True,
        check=False,
        timeout=30,
    )


@dataclass
class PgpKey:
    """One OpenPGP key in its own GNUPGHOME."""

    home: Path
    name: str
    email: str
    fingerprint: str
    algo: str
    expired: bool = False
    revoked: bool = False
    _revocation: bytes = field(default=b"", repr=False)

    @property
    def uid(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def key_id(self) -> str:
        return self.fingerprint[-16:]

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Subprocess env for signing with this key (GNUPGHOME set)."""
        return gpg_env(self.home, base)

    def public_armored(self) -> bytes:
        """The public key, ASCII-armored (with its revocation if revoked)."""
        pub = run_gpg(self.home, "--armor", "--export", self.fingerprint).stdout
        return pub + self._revocation

    def public_binary(self) -> bytes:
        """The public key as a binary (legacy keyring) packet stream."""
        if self._revocation:
            # Binary export with the revocation: go through a scratch home.
            with PgpVerifyHome([self]) as scratch:
                return run_gpg(scratch.home, "--export", self.fingerprint).stdout
        return run_gpg(self.home, "--export", self.fingerprint).stdout

    def write_pubring(self, path: Path) -> Path:
        """Write a binary public keyring (what ``helm verify --keyring`` reads)."""
        path.write_bytes(self.public_binary())
        return path

    def write_secring(self, path: Path) -> Path:
        """Write a legacy binary secret keyring (what ``helm package --sign`` reads).

        gpg 2.1+ keeps secret keys in the agent, not in secring.gpg; helm 4
        still wants the old single-file format, which an export produces.
        """
        path.write_bytes(run_gpg(self.home, "--export-secret-keys", self.fingerprint).stdout)
        return path

    def sign_detached(self, data: bytes, armor: bool = True) -> bytes:
        args = ["--local-user", self.fingerprint, "--detach-sign"]
        return run_gpg(self.home, *(["--armor"] if armor else []), *args, input=data).stdout

    def clearsign(self, data: bytes, digest: str = "SHA512") -> bytes:
        args = ["--local-user", self.fingerprint, "--digest-algo", digest, "--clearsign"]
        return run_gpg(self.home, *args, input=data).stdout

    def cleanup(self) -> None:
        kill_agent(self.home)
        shutil.rmtree(self.home, ignore_errors=True)


def generate_key(
    name: str = "Test Signer",
    email: str | None = None,
    algo: Algo = "ed25519",
    *,
    expired: bool = False,
    revoked: bool = False,
) -> PgpKey:
    """Generate a passphrase-less signing key in a fresh GNUPGHOME."""
    email = email or f"{name.lower().replace(' ', '.')}@example.test"
    home = _new_home("pgp-")
    if expired:
        # Signer-side only: every gpg run in this home believes it is 2020.
        (home / "gpg.conf").write_text(f"faked-system-time {_EXPIRED_FAKE_TIME}\n")
    expire = "30d" if expired else "never"
    run_gpg(
        home,
        "--passphrase",
        "",
        "--quick-gen-key",
        f"{name} <{email}>",
        algo,
        "sign",
        expire,
    )
    fpr = _only_fingerprint(home)
    revocation = _revocation_cert(home, fpr) if revoked else b""
    return PgpKey(home, name, email, fpr, algo, expired, revoked, revocation)


def _only_fingerprint(home: Path) -> str:
    out = run_gpg(home, "--with-colons", "--list-secret-keys").stdout.decode()
    fprs = []
    in_primary = False
    for line in out.splitlines():
        kind = line.split(":", 1)[0]
        if kind == "sec":
            in_primary = True
        elif kind == "fpr" and in_primary:
            fprs.append(line.split(":")[9])
            in_primary = False
        elif kind == "ssb":
            in_primary = False
    if len(fprs) != 1:
        raise RuntimeError(f"expected one secret key in {home}, found {fprs}")
    return fprs[0]


def _revocation_cert(home: Path, fpr: str) -> bytes:
    # gpg writes a revocation certificate at generation time, with the armor
    # header prefixed by ':' so it cannot be imported by accident.
    text = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
    armored = text[text.index(":-----BEGIN") + 1 :]
    return armored.encode()


class PgpVerifyHome:
    """A GNUPGHOME holding only the public keys a verifier trusts.

    Use as a context manager, or call ``cleanup()``.
    """

    def __init__(self, keys: Iterable[PgpKey] = ()) -> None:
        self.home = _new_home("pgpv-")
        for key in keys:
            self.add(key)

    def add(self, key: PgpKey) -> None:
        self.import_keys(key.public_armored())

    def import_keys(self, data: bytes) -> None:
        """Import public keys (armored or binary, revocations included)."""
        run_gpg(self.home, "--import", input=data)

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        return gpg_env(self.home, base)

    def verify(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """``gpg --status-fd 1 --verify ARGS``; never raises on a bad signature."""
        return run_gpg(self.home, "--status-fd", "1", "--verify", *args, input=input, check=False)

    def cleanup(self) -> None:
        kill_agent(self.home)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> PgpVerifyHome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class PgpKeyFactory:
    """Makes keys on demand and caches them by name (keys are slow-ish to make)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, bool, bool], PgpKey] = {}

    def __call__(
        self,
        name: str = "Test Signer",
        algo: Algo = "ed25519",
        *,
        expired: bool = False,
        revoked: bool = False,
    ) -> PgpKey:
        slot = (name, algo, expired, revoked)
        if slot not in self._keys:
            self._keys[slot] = generate_key(name, algo=algo, expired=expired, revoked=revoked)
        return self._keys[slot]

    def cleanup(self) -> None:
        for key in self._keys.values():
            key.cleanup()
        self._keys.clear()
