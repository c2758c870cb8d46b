"""Git repositories with signed (and forged) commits and tags, via the real git.

Every git run gets an isolated environment: no system or global config
(``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``), a HOME that does
not exist, every inherited ``GIT_*`` variable dropped (tests may run inside a
git hook, where ``GIT_DIR`` would redirect everything), and deterministic
author / committer identities and dates. A developer's ``commit.gpgsign`` or
``tag.gpgSign`` can therefore never sign a fixture "unsigned" commit.

Signers only add ``-c`` options and environment: ``SshSigner`` uses
``gpg.format=ssh`` with the private key file as ``user.signingkey``;
``PgpSigner`` uses the key's own GNUPGHOME and fingerprint.

What git 2.39 writes (checked by tests/testkit/test_gitrepo.py):
- commits carry the signature in a ``gpgsig`` header in SHA-1 repositories and
  in ``gpgsig-sha256`` in SHA-256 repositories;
- tags carry it after the message, in both object formats.

Forgeries (each one a trap a gate must catch):
- ``commit(..., sign=None)`` / ``tag(..., sign=None)``: unsigned;
- a signer the verifier does not trust: sign with another key;
- ``tag(..., annotated=False)``: lightweight tag, no tag object at all;
- ``retag("v1.0.0", "v2.0.0")``: ``refs/tags/v2.0.0`` points at the signed
  tag object whose ``tag`` field says ``v1.0.0``; ``git verify-tag v2.0.0``
  PASSES, because git never compares the two names;
- ``tag(name, target="HEAD~1")``: a valid tag on another commit than HEAD;
- ``modify_worktree(...)``: files changed after the signed commit;
- ``write_object(...)``: arbitrary (e.g. tampered) raw objects.

Delivery shapes: ``clone(dest, depth=, tags=)`` (a real fetch over file://),
``export_tree(dest, rev, normalize_modes=)`` (the files without ``.git``, as
a source artifact or an Argo CD stream with every mode flattened).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from testkit.pgp import PgpKey, PgpVerifyHome
from testkit.sshkeys import SshKey, ssh_env

ObjectFormat = Literal["sha1", "sha256"]

# 2025-01-01T00:00:00Z; each commit or tag advances the clock by a minute so
# that history is ordered, yet identical from run to run.
BASE_EPOCH = 1_735_689_600
AUTHOR_NAME = "Release Bot"
AUTHOR_EMAIL = "release-bot@example.test"

# Nothing here exists: git must not find a global config, ssh-keygen no ~/.ssh.
_NOWHERE = "/nonexistent/testkit-git-home"


class Signer(Protocol):
    """How git should sign: extra ``-c`` options and environment."""

    def git_config(self) -> list[str]: ...

    def env(self, base: Mapping[str, str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class SshSigner:
    key: SshKey

    def git_config(self) -> list[str]:
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.key.private_path}"]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env.pop("SSH_AUTH_SOCK", None)  # sign with the file, never an agent's key
        return env


@dataclass(frozen=True)
class PgpSigner:
    key: PgpKey

    def git_config(self) -> list[str]:
        return ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={self.key.fingerprint}"]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return self.key.env(base)


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The isolated environment every git subprocess here runs with."""
    env = {k: v for k, v in ssh_env().items() if not k.startswith("GIT_")}
    env.update(
        {
            "HOME": _NOWHERE,
            "XDG_CONFIG_HOME": _NOWHERE,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            # Unsigned operations must not reach any real keyring either.
            "GNUPGHOME": _NOWHERE,
            "GIT_AUTHOR_NAME": AUTHOR_NAME,
            "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
            "GIT_COMMITTER_NAME": AUTHOR_NAME,
            "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
            "TZ": "UTC",
        }
    )
    env.update(extra or {})
    return env


class GitError(RuntimeError):
    pass


class GitRepo:
    """A working repository driven through the git binary."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._clock = BASE_EPOCH

    # -- construction -------------------------------------------------------

    @classmethod
    def init(
        cls, path: Path, object_format: ObjectFormat = "sha1", branch: str = "main"
    ) -> GitRepo:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["git", "init", "-q", f"--object-format={object_format}", "-b", branch, str(path)],
            env=git_env(),
            check=True,
            capture_output=True,
        )
        repo = cls(path)
        # Local config only (global is /dev/null): keep signing off unless asked.
        repo.git("config", "commit.gpgsign", "false")
        repo.git("config", "tag.gpgsign", "false")
        return repo

    # -- plumbing -----------------------------------------------------------

    def run(
        self,
        *args: str,
        signer: Signer | None = None,
        env: Mapping[str, str] | None = None,
        input: bytes | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run git in this repository; returns bytes output."""
        full_env = git_env(env)
        config: list[str] = []
        if signer is not None:
            full_env = signer.env(full_env)
            config = signer.git_config()
        proc = subprocess.run(
            ["git", *config, "-C", str(self.path), *args],
            env=full_env,
            input=input,
            capture_output=True,
            check=False,
            timeout=300,
        )
        if check and proc.returncode != 0:
            raise GitError(
                f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.decode().strip()}"
            )
        return proc

    def git(self, *args: str, input: bytes | None = None) -> str:
        """Run git (no signer) and return stripped stdout text."""
        return self.run(*args, input=input).stdout.decode().strip()

    def _tick(self) -> dict[str, str]:
        self._clock += 60
        stamp = f"@{self._clock} +0000"
        return {"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}

    @property
    def object_format(self) -> str:
        return self.git("rev-parse", "--show-object-format")

    @property
    def git_dir(self) -> Path:
        return self.path / ".git"

    def rev_parse(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", "--end-of-options", rev)

    def head(self) -> str:
        return self.rev_parse("HEAD")

    def object_type(self, obj: str) -> str:
        return self.git("cat-file", "-t", obj)

    def cat_file(self, obj: str) -> bytes:
        """Raw bytes of an object (exactly what was hashed, minus the header)."""
        kind = self.object_type(obj)
        return self.run("cat-file", kind, obj).stdout

    def write_object(self, kind: str, data: bytes) -> str:
        """Write raw object bytes without validation (for forged objects)."""
        return self.git("hash-object", "-t", kind, "-w", "--literally", "--stdin", input=data)

    def update_ref(self, ref: str, oid: str) -> None:
        self.git("update-ref", ref, oid)

    # -- porcelain ----------------------------------------------------------

    def write_files(self, files: Mapping[str, bytes | None]) -> None:
        """Write (or, for ``None``, delete) files in the working tree."""
        for name, data in files.items():
            target = self.path / name
            if data is None:
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def commit(
        self,
        files: Mapping[str, bytes | None] | None = None,
        message: str = "change",
        sign: Signer | None = None,
    ) -> str:
        """Write files, stage everything, commit; return the commit id."""
        self.write_files(files or {})
        self.git("add", "-A")
        flag = "-S" if sign is not None else "--no-gpg-sign"
        args = ["commit", "-q", "--allow-empty", flag, "-m", message]
        self.run(*args, signer=sign, env=self._tick())
        return self.head()

    def tag(
        self,
        name: str,
        target: str = "HEAD",
        sign: Signer | None = None,
        annotated: bool = True,
        message: str | None = None,
        force: bool = False,
    ) -> str:
        """Create a tag; return the tag object id (or the target, if lightweight)."""
        if sign is not None and not annotated:
            raise TypeError("a lightweight tag cannot be signed")
        args = ["tag", *(["-f"] if force else [])]
        if sign is not None:
            args += ["-s", "-m", message or f"Release {name}"]
        elif annotated:
            args += ["-a", "--no-sign", "-m", message or f"Release {name}"]
        self.run(*args, "--", name, target, signer=sign, env=self._tick())
        return self.rev_parse(f"refs/tags/{name}")

    def retag(self, existing: str, new: str) -> str:
        """Point ``refs/tags/<new>`` at the tag *object* of ``existing``.

        Models a signed tag re-pushed under another name: the object still
        says ``tag <existing>`` and its signature is still valid.
        """
        oid = self.rev_parse(f"refs/tags/{existing}")
        self.update_ref(f"refs/tags/{new}", oid)
        return oid

    def modify_worktree(self, files: Mapping[str, bytes | None]) -> None:
        """Change the working tree after the last commit, without committing."""
        self.write_files(files)

    def status_porcelain(self) -> str:
        # Not via git(): its strip() would eat the leading status column.
        return self.run("status", "--porcelain").stdout.decode().rstrip("\n")

    def clone(self, dest: Path, *, depth: int | None = None, tags: bool = True) -> GitRepo:
        """``git clone`` through the file:// transport (a real fetch, not hard links).

        ``depth`` makes a shallow clone (as Argo CD may); ``tags=False`` leaves
        the annotated tag objects behind, as a fetch without ``--tags`` would.
        """
        args = ["clone", "-q", "--no-local"]
        if depth is not None:
            args += [f"--depth={depth}"]
        if not tags:
            args += ["--no-tags"]
        proc = subprocess.run(
            ["git", *args, f"file://{self.path.resolve()}", str(dest)],
            env=git_env(),
            capture_output=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            raise GitError(f"git clone failed: {proc.stderr.decode().strip()}")
        return GitRepo(dest)

    def export_tree(self, dest: Path, rev: str = "HEAD", *, normalize_modes: bool = False) -> Path:
        """The files of ``rev`` in ``dest``, without ``.git`` (what a source artifact holds).

        ``normalize_modes`` makes every file 0644 and directory 0755, as the
        Argo CD repo-server's tar stream does unless ``preserveFileMode``.
        """
        dest.mkdir(parents=True, exist_ok=True)
        archive = self.run("archive", "--format=tar", rev).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        if normalize_modes:
            for path in [dest, *dest.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(0o755 if path.is_dir() else 0o644)
        return dest

    # -- verification through git's own code --------------------------------

    def verify(
        self,
        kind: Literal["commit", "tag"],
        rev: str,
        *,
        allowed_signers: Path | None = None,
        pgp: PgpVerifyHome | None = None,
        raw: bool = False,
    ) -> subprocess.CompletedProcess[bytes]:
        """``git verify-commit`` / ``git verify-tag`` with the given trust only.

        ``allowed_signers`` sets ``gpg.ssh.allowedSignersFile``; ``pgp`` gives
        the GNUPGHOME holding trusted public keys. Never raises on failure.
        """
        extra_env: dict[str, str] = {}
        config: list[str] = []
        if allowed_signers is not None:
            config = ["-c", f"gpg.ssh.allowedSignersFile={allowed_signers}"]
        if pgp is not None:
            extra_env["GNUPGHOME"] = str(pgp.home)
        args = [*config, f"verify-{kind}", *(["--raw"] if raw else []), rev]
        # -c must precede the verb, so run() prepends "-C path" after config.
        return subprocess.run(
            ["git", "-C", str(self.path), *args],
            env=git_env(extra_env),
            capture_output=True,
            check=False,
            timeout=120,
        )


# -- scenarios ----------------------------------------------------------------


def release_repo(
    path: Path,
    signer: Signer | None,
    *,
    object_format: ObjectFormat = "sha1",
    tag: str = "v1.0.0",
    sign_commits: bool = True,
) -> GitRepo:
    """A small app repo: two commits (signed when ``sign_commits``) and a signed tag."""
    repo = GitRepo.init(path, object_format)
    commit_signer = signer if sign_commits else None
    repo.commit({"README.md": b"# demo app\n"}, "initial commit", sign=commit_signer)
    repo.commit(
        {
            "deploy/deployment.yaml": DEMO_DEPLOYMENT,
            "deploy/kustomization.yaml": DEMO_KUSTOMIZATION,
        },
        "add manifests",
        sign=commit_signer,
    )
    repo.tag(tag, sign=signer)
    return repo


DEMO_DEPLOYMENT = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: demo}
  template:
    metadata:
      labels: {app: demo}
    spec:
      containers:
        - name: app
          image: registry.example.com/acme/app:1.0.0
"""

DEMO_KUSTOMIZATION = b"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
"""


def big_repo(
    path: Path,
    *,
    commits: int = 1000,
    tags: int = 100,
    object_format: ObjectFormat = "sha1",
    sign_last_tag: Signer | None = None,
) -> GitRepo:
    """A repository with many commits and annotated tags, built by git fast-import.

    Tags ``v0.<i>.0`` are spread evenly over history, the last one on HEAD.
    Fast-import cannot sign, so ``sign_last_tag`` re-creates the last tag
    as a signed tag afterwards. 1,000 commits take well under a second.
    """
    if tags > commits:
        raise ValueError("more tags than commits")
    repo = GitRepo.init(path, object_format)
    stream = _fast_import_stream(commits, tags)
    repo.run("fast-import", "--quiet", "--done", input=stream)
    repo.git("reset", "-q", "--hard", "main")
    if sign_last_tag is not None and tags:
        last = f"v0.{tags}.0"
        repo._clock = BASE_EPOCH + 60 * (commits + 1)
        repo.tag(last, sign=sign_last_tag, force=True)
    return repo


def _fast_import_stream(commits: int, tags: int) -> bytes:
    out: list[bytes] = []
    ident = f"{AUTHOR_NAME} <{AUTHOR_EMAIL}>"

    def data(payload: bytes) -> None:
        out.append(b"data %d\n" % len(payload) + payload + b"\n")

    # Tag j sits on commit floor(j * commits / tags): even spacing, last on HEAD.
    tag_at = {(j * commits) // tags: j for j in range(1, tags + 1)} if tags else {}
    for i in range(1, commits + 1):
        when = BASE_EPOCH + 60 * i
        out.append(b"commit refs/heads/main\nmark :%d\n" % i)
        out.append(f"author {ident} {when} +0000\ncommitter {ident} {when} +0000\n".encode())
        data(f"commit {i}\n".encode())
        if i > 1:
            out.append(b"from :%d\n" % (i - 1))
        content = f"counter: {i}\n".encode()
        out.append(b"M 100644 inline data/counter.txt\n")
        data(content)
        out.append(b"M 100644 inline data/file-%03d.txt\n" % (i % 50))
        data(f"touched by commit {i}\n".encode())
        if i in tag_at:
            tag_no = tag_at[i]
            out.append(f"tag v0.{tag_no}.0\nfrom :{i}\n".encode())
            out.append(f"tagger {ident} {when} +0000\n".encode())
            data(f"Release v0.{tag_no}.0\n".encode())
    out.append(b"done\n")
    return b"".join(out)
