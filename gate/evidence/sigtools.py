"""The one seam where evidence verification starts processes: gpg and ssh-keygen.

OpenPGP and SSHSIG have no library equivalent we trust as much as the reference
tools, so we run them, but under our rules:

- trust comes only from the policy: a fresh ``GNUPGHOME`` holding exactly the policy's
  PGP keys, an ``allowed_signers`` file written from the policy's SSH keys. A user's
  keyring, ``~/.ssh`` or an agent never take part (clean environment, no HOME);
- decisions are made on machine-readable results, never on human text: gpg's
  ``--status-fd`` lines (``VALIDSIG`` with the primary key fingerprint) and
  ssh-keygen's exit code. ssh-keygen prints "Good signature" for an expired key and
  exits 1; text parsing would have passed it;
- PGP key expiry and revocation are judged at the engine's clock reading when the
  caller gives it (``PgpKeyring(keys, now)``: gpg ``--faked-system-time <epoch>!``);
- SSH key validity is judged at the gate's clock (``-Overify-time``), never at the
  committer date git would pass: the signer chooses that date, so a stolen, expired
  key could back-date its way in;
- every run has a timeout and an output cap, and temporary homes are removed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from gate.errors import SignatureError, SourceError, VerificationError

TOOL_TIMEOUT_S = 30.0
MAX_OUTPUT_BYTES = 256 * 1024


class KeyExpiredError(VerificationError):
    reason = "key-expired"


class KeyRevokedError(VerificationError):
    reason = "key-revoked"


class UntrustedSignerError(VerificationError):
    reason = "untrusted-signer"


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr: bytes


def _clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # Nothing inherited but PATH: no GNUPGHOME, no SSH_AUTH_SOCK, no HOME to find
    # a user's keyring or ~/.ssh in, and C messages.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent/gitops-gate",
        "LC_ALL": "C",
        "LANG": "C",
    }
    env.update(extra or {})
    return env


def run_tool(
    argv: Sequence[str],
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = TOOL_TIMEOUT_S,
) -> ToolResult:
    """Run a signature tool with a clean environment, a timeout and an output cap."""
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            env=_clean_env(env),
            cwd=cwd,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:
        raise SourceError(
            f"{argv[0]} is not installed", reason="tool-missing", hint=f"install {argv[0]}"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise SourceError(f"{argv[0]} did not finish within {timeout:.0f} s") from e
    if len(proc.stdout) > MAX_OUTPUT_BYTES or len(proc.stderr) > MAX_OUTPUT_BYTES:
        raise SourceError(f"{argv[0]} wrote more than {MAX_OUTPUT_BYTES} bytes")
    return ToolResult(proc.returncode, proc.stdout, proc.stderr)


# -- OpenPGP ---------------------------------------------------------------------


@dataclass(frozen=True)
class PgpVerified:
    """A good signature: the signing (sub)key and its primary key fingerprints."""

    signing_fingerprint: str
    primary_fingerprint: str
    key_names: frozenset[str]


def _status(stdout: bytes) -> list[list[str]]:
    out = []
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("[GNUPG:] "):
            out.append(line[len("[GNUPG:] ") :].split())
    return out


class PgpKeyring:
    """A throwaway ``GNUPGHOME`` holding only the policy's PGP keys.

    Use as a context manager; the home is removed on exit. gpg runs with
    ``--no-autostart``, so no agent is left behind.
    """

    def __init__(self, keys: Mapping[str, str], now: dt.datetime | None = None) -> None:
        self._keys = dict(keys)
        #: The engine's single clock reading: key expiry and revocation are judged at
        #: this time (gpg ``--faked-system-time``, frozen), not at gpg's own clock.
        self._now = now
        self._home: Path | None = None
        #: primary fingerprint -> the policy key names it was imported under
        self.fingerprints: dict[str, set[str]] = {}

    def __enter__(self) -> PgpKeyring:
        self._home = Path(tempfile.mkdtemp(prefix="gate-gpg-"))
        self._home.chmod(0o700)
        try:
            for name, armored in sorted(self._keys.items()):
                self._import(name, armored)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def _gpg(self, *args: str, stdin: bytes = b"") -> ToolResult:
        if self._home is None:
            raise RuntimeError("PgpKeyring used outside its context")
        argv = ["gpg", "--batch", "--no-tty", "--no-autostart", "--status-fd", "1", *args]
        return run_tool(argv, stdin=stdin, env={"GNUPGHOME": str(self._home)}, cwd=self._home)

    def _import(self, name: str, armored: str) -> None:
        result = self._gpg("--import", stdin=armored.encode())
        primaries = {f[2] for f in _status(result.stdout) if f[0] == "IMPORT_OK" and len(f) >= 3}
        if not primaries:
            raise SourceError(
                f"policy key {name!r} could not be imported into the verification keyring",
                reason="policy-key-unusable",
                found=result.stderr.decode("utf-8", "replace").strip()[:300],
            )
        for fpr in primaries:
            self.fingerprints.setdefault(fpr.upper(), set()).add(name)

    def verify(self, payload: bytes, signature: bytes) -> PgpVerified:
        """Verify a detached signature; raise with the reason, or return the signer."""
        if self._home is None:
            raise RuntimeError("PgpKeyring used outside its context")
        sig_path = self._home / "signature.asc"
        sig_path.write_bytes(signature)
        clock: tuple[str, ...] = ()
        if self._now is not None:
            # "<epoch>!" freezes gpg's clock at the engine's reading (gpg >= 2.1.19). The
            # keys are imported at the real clock: a key is never "in the future" for the
            # import, and a key created after ``now`` is unusable at ``now`` (ERRSIG: deny).
            clock = ("--faked-system-time", f"{int(self._now.timestamp())}!")
        try:
            result = self._gpg(*clock, "--verify", str(sig_path), "-", stdin=payload)
        finally:
            sig_path.unlink(missing_ok=True)
        return self._judge(result)

    def _judge(self, result: ToolResult) -> PgpVerified:
        status = _status(result.stdout)
        kinds = [f[0] for f in status]
        expected = ", ".join(
            f"{'/'.join(sorted(n))} ({fp})" for fp, n in sorted(self.fingerprints.items())
        )
        if kinds.count("NEWSIG") > 1:
            raise SignatureError("the PGP signature block holds more than one signature")
        for f in status:
            if f[0] == "EXPKEYSIG" or f[0] == "KEYEXPIRED":
                raise KeyExpiredError(
                    "the PGP signature was made by an expired key",
                    found=f[1] if len(f) > 1 else "?",
                    expected=expected,
                    hint="renew the key's expiry and update the policy, or re-sign",
                )
            if f[0] == "REVKEYSIG" or f[0] == "KEYREVOKED":
                raise KeyRevokedError(
                    "the PGP signature was made by a revoked key",
                    found=f[1] if len(f) > 1 else "?",
                    expected=expected,
                )
            if f[0] == "EXPSIG":
                raise SignatureError("the PGP signature has expired", found=f[1])
            if f[0] == "BADSIG":
                raise SignatureError(
                    "the PGP signature does not match the signed data (modified or forged)",
                    found=f"key id {f[1]}",
                )
        errsig = next((f for f in status if f[0] == "ERRSIG"), None)
        if errsig is not None:
            issuer = errsig[7] if len(errsig) > 7 and errsig[7] != "-" else f"key id {errsig[1]}"
            if "NO_PUBKEY" in kinds:
                raise UntrustedSignerError(
                    "the PGP signature was made by a key the policy does not trust",
                    found=issuer,
                    expected=expected,
                    hint="sign with a key in spec.source.git.signers, or add the key to the policy",
                )
            raise SignatureError("gpg could not check the PGP signature", found=issuer)
        valid = [f for f in status if f[0] == "VALIDSIG"]
        if result.returncode != 0 or "GOODSIG" not in kinds or len(valid) != 1:
            raise SignatureError(
                "the PGP signature did not verify",
                found=result.stderr.decode("utf-8", "replace").strip()[:300] or "no VALIDSIG",
            )
        v = valid[0]
        signing = v[1].upper()
        # VALIDSIG's 10th argument is the primary key fingerprint (a subkey may sign).
        primary = v[10].upper() if len(v) > 10 else signing
        names = self.fingerprints.get(primary)
        if not names:  # gpg found the key, so it is in our keyring: cannot happen
            raise UntrustedSignerError(
                "the PGP signing key is not a policy key", found=primary, expected=expected
            )
        return PgpVerified(signing, primary, frozenset(names))


# -- SSH -------------------------------------------------------------------------

_SSH_ARMOR = re.compile(
    rb"-----BEGIN SSH SIGNATURE-----\n([A-Za-z0-9+/=\n]+)-----END SSH SIGNATURE-----\n?\Z"
)


@dataclass(frozen=True)
class SshTrustedKey:
    """A policy SSH key; ``valid_after``/``valid_before`` bound its use (optional)."""

    name: str
    public_line: str  # "<type> <base64>[ comment]"
    valid_after: dt.datetime | None = None
    valid_before: dt.datetime | None = None

    @property
    def blob(self) -> bytes:
        return base64.b64decode(self.public_line.split()[1], validate=True)

    @property
    def fingerprint(self) -> str:
        return ssh_fingerprint(self.blob)


@dataclass(frozen=True)
class SshSigInfo:
    """What an SSHSIG blob says about itself (PROTOCOL.sshsig), before any check."""

    public_key: bytes
    namespace: str
    hash_algorithm: str

    @property
    def fingerprint(self) -> str:
        return ssh_fingerprint(self.public_key)


def ssh_fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def parse_sshsig(armored: bytes) -> SshSigInfo:
    """Read the signer's public key and namespace from an armored SSHSIG.

    Only to name the signer and pick the policy key; ssh-keygen verifies the rest.
    """
    m = _SSH_ARMOR.match(armored)
    if m is None:
        raise SignatureError("the SSH signature is not a well-formed armored SSHSIG")
    try:
        raw = base64.b64decode(m.group(1).replace(b"\n", b""), validate=True)
    except ValueError as e:
        raise SignatureError("the SSH signature is not valid base64") from e
    if not raw.startswith(b"SSHSIG") or len(raw) < 10:
        raise SignatureError("the SSH signature lacks the SSHSIG magic")
    pos = 6
    (version,) = struct.unpack(">I", raw[pos : pos + 4])
    pos += 4
    fields: list[bytes] = []
    for _ in range(5):  # publickey, namespace, reserved, hash_algorithm, signature
        if pos + 4 > len(raw):
            raise SignatureError("the SSH signature is truncated")
        (n,) = struct.unpack(">I", raw[pos : pos + 4])
        pos += 4
        if pos + n > len(raw):
            raise SignatureError("the SSH signature is truncated")
        fields.append(raw[pos : pos + n])
        pos += n
    if version != 1 or pos != len(raw):
        raise SignatureError("the SSH signature has an unsupported version or trailing data")
    return SshSigInfo(
        fields[0], fields[1].decode("utf-8", "replace"), fields[3].decode("ascii", "replace")
    )


@dataclass(frozen=True)
class SshVerified:
    fingerprint: str
    key_names: frozenset[str]  # every policy name this one key is listed under


def _ssh_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ")


@dataclass(frozen=True)
class SshVerifier:
    """Verify SSHSIGs (namespace ``git``) against the policy's SSH keys only."""

    keys: Sequence[SshTrustedKey]
    namespace: str = "git"
    _by_blob: Mapping[bytes, tuple[SshTrustedKey, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by: dict[bytes, list[SshTrustedKey]] = {}
        for k in self.keys:
            by.setdefault(k.blob, []).append(k)
        object.__setattr__(self, "_by_blob", {b: tuple(v) for b, v in by.items()})

    def verify(self, payload: bytes, armored: bytes, now: dt.datetime) -> SshVerified:
        info = parse_sshsig(armored)
        expected = ", ".join(f"{k.name} ({k.fingerprint})" for k in self.keys) or "none"
        if info.namespace != self.namespace:
            # A signature for another namespace (e.g. "file") must not count for git:
            # that is the cross-protocol replay SSHSIG namespaces exist to stop.
            raise SignatureError(
                "the SSH signature was made for another namespace",
                found=repr(info.namespace),
                expected=repr(self.namespace),
            )
        candidates = self._by_blob.get(info.public_key, ())
        if not candidates:
            raise UntrustedSignerError(
                "the SSH signature was made by a key the policy does not trust",
                found=info.fingerprint,
                expected=expected,
                hint="sign with a key in spec.source.git.signers, or add the key to the policy",
            )
        key = candidates[0]
        with tempfile.TemporaryDirectory(prefix="gate-ssh-") as tmp:
            allowed = Path(tmp) / "allowed_signers"
            sig = Path(tmp) / "signature"
            # Principal = the policy key name (names are [A-Za-z0-9._-]: no quoting).
            allowed.write_text(f'{key.name} namespaces="{self.namespace}" {key.public_line}\n')
            sig.write_bytes(armored)
            result = run_tool(
                [
                    "ssh-keygen",
                    "-Y",
                    "verify",
                    "-f",
                    str(allowed),
                    "-I",
                    key.name,
                    "-n",
                    self.namespace,
                    "-s",
                    str(sig),
                    f"-Overify-time={_ssh_time(now)}",
                ],
                stdin=payload,
                cwd=Path(tmp),
            )
        if result.returncode != 0:
            raise SignatureError(
                "the SSH signature does not verify over the signed data (modified or forged)",
                found=f"{info.fingerprint} ({key.name})",
            )
        # Validity is ours to judge, at the gate's clock: never the committer date.
        if key.valid_before is not None and now >= key.valid_before:
            raise KeyExpiredError(
                f"the SSH key {key.name} expired before this verification",
                found=f"{info.fingerprint}, valid before {key.valid_before.isoformat()}",
                expected=f"valid at {now.isoformat()}",
            )
        if key.valid_after is not None and now < key.valid_after:
            raise KeyExpiredError(
                f"the SSH key {key.name} is not valid yet",
                found=f"{info.fingerprint}, valid after {key.valid_after.isoformat()}",
                expected=f"valid at {now.isoformat()}",
            )
        return SshVerified(info.fingerprint, frozenset(k.name for k in candidates))
