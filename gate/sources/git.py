"""Read a checkout's ``.git`` and working tree: the I/O half of Git source evidence.

The ``.git`` arrives with the sources (Argo CD streams it to the plugin), so it is
untrusted input to a trusted process. git runs with:

- a clean environment: no system or global config (``GIT_CONFIG_NOSYSTEM``,
  ``GIT_CONFIG_GLOBAL=/dev/null``), no HOME, no inherited ``GIT_*`` variable (a
  ``GIT_DIR`` from a hook would redirect everything);
- ``--no-replace-objects``: ``refs/replace/*`` would let the repository swap a signed
  commit for another one while every id still looks right;
- ``core.fsmonitor`` and hooks off (a repository config can name programs to run),
  and only plumbing that reads objects and refs;
- timeouts and output caps.

Objects are re-hashed by :mod:`gate.evidence.git` when parsed, so a tampered object
store is detected rather than believed.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gate.errors import SourceError, VerificationError
from gate.evidence.git import (
    OID_HEX_LEN,
    ObjectFormat,
    TreeEntry,
    object_id,
    parse_tree,
)

GIT_TIMEOUT_S = 30.0
MAX_GIT_OUTPUT = 256 * 1024 * 1024
MAX_WORKTREE_FILES = 200_000
_NOWHERE = "/nonexistent/gitops-gate"


class GitMetadataMissingError(VerificationError):
    """No usable Git metadata where the policy requires Git evidence."""

    reason = "git-metadata-missing"


@dataclass(frozen=True)
class TagRef:
    """``refs/tags/<name>`` and what it points at, as ``for-each-ref`` reports it."""

    name: str  # without "refs/tags/"
    oid: str
    object_type: str  # "tag" for annotated tags, "commit" for lightweight ones
    peeled: str | None  # the tag object's target (one level), if annotated


def git_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": _NOWHERE,
        "XDG_CONFIG_HOME": _NOWHERE,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_OPTIONAL_LOCKS": "0",  # never write to the untrusted repository
        # .git/info/grafts rewrites parents like refs/replace does; point git at none.
        "GIT_GRAFT_FILE": os.devnull,
        "LC_ALL": "C",
    }


def find_checkout_root(path: Path, app_path: str | None = None) -> Path | None:
    """The nearest directory at or above ``path`` that holds a ``.git`` directory.

    Argo CD runs the plugin in the app path; ``.git`` sits at the checkout root above.
    With ``app_path`` (``ARGOCD_APP_SOURCE_PATH``, relative to the checkout root) only
    that root is considered: a source without ``.git`` must not be bound to some
    unrelated repository further up the file system.
    """
    here = path.resolve()
    candidates: tuple[Path, ...] = (here, *here.parents)
    if app_path is not None:
        depth = len([p for p in PurePosixPath(app_path).parts if p not in (".", "/")])
        if depth > len(here.parents):
            return None
        candidates = (here if depth == 0 else here.parents[depth - 1],)
    for candidate in candidates:
        if (candidate / ".git").is_dir():
            return candidate
        if (candidate / ".git").exists():
            return candidate  # a gitdir file: reported by GitCheckout.open
    return None


class GitCheckout:
    """A working tree and its ``.git``, read through hardened git plumbing."""

    def __init__(self, root: Path, fmt: ObjectFormat) -> None:
        self.root = root
        self.git_dir = root / ".git"
        self.fmt: ObjectFormat = fmt

    @classmethod
    def open(cls, path: Path, app_path: str | None = None) -> GitCheckout:
        root = find_checkout_root(path, app_path)
        hint = (
            "Argo CD: remove .git from reposerver.plugin.tar.exclusions (argocd-cmd-params-cm) "
            "so the plugin receives the repository metadata; do not use a shallow clone "
            "(depth) for apps whose policy requires Git signatures"
        )
        if root is None:
            raise GitMetadataMissingError(
                f"no .git directory at or above {path}: the Git signatures the policy "
                "requires cannot be checked, and the gate does not skip them",
                hint=hint,
            )
        if not (root / ".git").is_dir():
            raise GitMetadataMissingError(
                f"{root / '.git'} is not a directory (a worktree or submodule pointer)",
                hint="verify a plain clone; the gate reads only a .git directory",
            )
        probe = cls(root, "sha1")
        fmt = probe.run("rev-parse", "--show-object-format").decode().strip()
        if fmt not in OID_HEX_LEN:
            raise SourceError(f"unknown Git object format {fmt!r}")
        return cls(root, fmt)  # type: ignore[arg-type]

    # -- plumbing ------------------------------------------------------------------

    def run(self, *args: str, stdin: bytes = b"", check: bool = True) -> bytes:
        argv = [
            "git",
            f"--git-dir={self.git_dir}",
            "--no-replace-objects",
            "-c",
            "core.fsmonitor=false",
            "-c",
            f"core.hooksPath={os.devnull}",
            # A commit-graph file is an untrusted cache of parents; a partial clone's
            # promisor remote would make reading a missing object fetch it.
            "-c",
            "core.commitGraph=false",
            "-c",
            "protocol.allow=never",
            "-c",
            f"safe.directory={self.root}",
            "-c",
            f"safe.directory={self.git_dir}",
            *args,
        ]
        try:
            proc = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                env=git_env(),
                cwd=self.root,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError as e:
            raise SourceError("git is not installed", reason="tool-missing") from e
        except subprocess.TimeoutExpired as e:
            raise SourceError(f"git {args[0]} did not finish within {GIT_TIMEOUT_S:.0f} s") from e
        if len(proc.stdout) > MAX_GIT_OUTPUT:
            raise SourceError(f"git {args[0]} wrote more than {MAX_GIT_OUTPUT} bytes")
        if check and proc.returncode != 0:
            raise SourceError(
                f"git {args[0]} failed in {self.root}",
                found=proc.stderr.decode("utf-8", "replace").strip()[:500],
            )
        return proc.stdout

    def resolve_commit(self, rev: str) -> str | None:
        """The commit ``rev`` names, or None when the repository does not have it."""
        out = self.run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        text = out.decode().strip()
        return text if len(text) == OID_HEX_LEN[self.fmt] else None

    def head(self) -> str:
        oid = self.resolve_commit("HEAD")
        if oid is None:
            raise GitMetadataMissingError(
                f"HEAD of {self.root} does not name a commit in .git",
                hint="the .git sent with the sources is incomplete (shallow or partial clone)",
            )
        return oid

    def is_shallow(self) -> bool:
        return (self.git_dir / "shallow").exists()

    def has_ref(self, ref: str) -> bool:
        out = self.run("rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False)
        return bool(out.strip())

    def tags(self) -> list[TagRef]:
        fmt = "%(refname)%00%(objectname)%00%(objecttype)%00%(*objectname)"
        out = self.run("for-each-ref", f"--format={fmt}", "refs/tags/")
        refs: list[TagRef] = []
        for line in out.decode("utf-8", "surrogateescape").splitlines():
            parts = line.split("\x00")
            if len(parts) != 4 or not parts[0].startswith("refs/tags/"):
                raise SourceError("git for-each-ref printed an unexpected line", found=line[:200])
            refs.append(TagRef(parts[0][len("refs/tags/") :], parts[1], parts[2], parts[3] or None))
        return refs

    def read_objects(self, oids: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """``git cat-file --batch``: id -> (type, raw bytes). Missing ids are absent."""
        if not oids:
            return {}
        out = self.run("cat-file", "--batch", stdin="".join(f"{o}\n" for o in oids).encode())
        result: dict[str, tuple[str, bytes]] = {}
        pos = 0
        for oid in oids:
            nl = out.find(b"\n", pos)
            if nl < 0:
                raise SourceError("git cat-file --batch output is truncated")
            header = out[pos:nl].decode("utf-8", "replace").split()
            pos = nl + 1
            if len(header) == 2 and header[1] == "missing":
                continue
            if len(header) != 3 or header[0] != oid:
                raise SourceError("git cat-file --batch printed an unexpected header")
            size = int(header[2])
            body = out[pos : pos + size]
            if len(body) != size or out[pos + size : pos + size + 1] != b"\n":
                raise SourceError("git cat-file --batch output is truncated")
            result[oid] = (header[1], body)
            pos += size + 1
        return result

    def read_object(self, oid: str, kind: str) -> bytes | None:
        got = self.read_objects([oid]).get(oid)
        if got is None:
            return None
        if got[0] != kind:
            raise VerificationError(
                f"object {oid} is a {got[0]}, not a {kind}",
                reason="malformed-object",
            )
        return got[1]

    # -- trees ---------------------------------------------------------------------

    def tree_files(self, tree: str) -> dict[str, TreeEntry]:
        """Every non-tree entry of ``tree``, by path, read level by level (hash-checked)."""
        files: dict[str, TreeEntry] = {}
        level: list[tuple[str, str]] = [("", tree)]
        while level:
            objects = self.read_objects([oid for _, oid in level])
            nxt: list[tuple[str, str]] = []
            for prefix, oid in level:
                got = objects.get(oid)
                if got is None or got[0] != "tree":
                    raise GitMetadataMissingError(
                        f"tree {oid} ({prefix or '/'}) is not in .git",
                        hint="the .git sent with the sources is incomplete",
                    )
                for entry in parse_tree(oid, got[1], self.fmt):
                    path = prefix + entry.name
                    if entry.kind == "tree":
                        nxt.append((path + "/", entry.oid))
                    else:
                        files[path] = entry
            level = nxt
        return files


# -- the working tree -------------------------------------------------------------


@dataclass(frozen=True)
class WorktreeFile:
    kind: str  # "blob", "symlink" or "other"
    oid: str  # blob id of the content (file bytes, or the symlink target)


def _hash_file(path: Path, fmt: ObjectFormat) -> str:
    # Files are small next to the budget; one read keeps this simple and exact.
    return object_id("blob", path.read_bytes(), fmt)


def worktree_files(
    root: Path, fmt: ObjectFormat, skip: Iterable[Path] = ()
) -> dict[str, WorktreeFile]:
    """Every file under ``root`` except ``root/.git``, by relative path.

    Modes are ignored on purpose: Argo CD's plugin tarball makes every file 0644,
    so comparing modes would deny every genuine checkout. Content (blob ids) and
    symlink targets are what a renderer reads.
    """
    skipped = {p.resolve() for p in skip} | {(root / ".git").resolve()}
    out: dict[str, WorktreeFile] = {}
    stack: list[tuple[Path, str]] = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            path = Path(e.path)
            rel = prefix + e.name
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if path.resolve() in skipped and prefix == "":
                    continue
                stack.append((path, rel + "/"))
            elif stat.S_ISLNK(st.st_mode):
                target = os.fsencode(os.readlink(path))
                out[rel] = WorktreeFile("symlink", object_id("blob", target, fmt))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = WorktreeFile("blob", _hash_file(path, fmt))
            else:
                out[rel] = WorktreeFile("other", "")
            if len(out) > MAX_WORKTREE_FILES:
                raise SourceError(f"the working tree has more than {MAX_WORKTREE_FILES} files")
    return out


@dataclass(frozen=True)
class TreeDiff:
    modified: tuple[str, ...]
    added: tuple[str, ...]
    deleted: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not (self.modified or self.added or self.deleted)


def compare_tree(expected: Mapping[str, TreeEntry], actual: Mapping[str, WorktreeFile]) -> TreeDiff:
    """Paths whose content differs from the signed tree, or that exist on one side only.

    A submodule (gitlink) is never "equal": its files are not covered by this
    repository's signature, so a tree that contains one cannot be proven.
    """
    modified: list[str] = []
    for path, entry in expected.items():
        have = actual.get(path)
        if have is None:
            continue
        if entry.kind == "gitlink" or have.kind != entry.kind or have.oid != entry.oid:
            modified.append(path)
    deleted = sorted(p for p in expected if p not in actual)
    added = sorted(p for p in actual if p not in expected)
    return TreeDiff(tuple(sorted(modified)), tuple(added), tuple(deleted))
