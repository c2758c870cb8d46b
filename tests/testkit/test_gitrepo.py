"""Self-tests for testkit.gitrepo / pgp / sshkeys: git's own verification is the oracle.

Every signed fixture must pass ``git verify-commit`` / ``git verify-tag`` with
exactly the trusted keys, and every forgery must fail it, except the traps
that git does not catch (re-pushed tag, tag off HEAD, dirty tree, signer-chosen
SSH verify time), which are shown passing git while being wrong.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.gitrepo import (
    GitRepo,
    PgpSigner,
    Signer,
    SshSigner,
    big_repo,
    git_env,
    release_repo,
)
from testkit.pgp import PgpKey, PgpKeyFactory, PgpVerifyHome
from testkit.sshkeys import SshKey, SshKeyFactory, ssh_env, write_allowed_signers

pytestmark = pytest.mark.integration

FORMATS = ["sha1", "sha256"]


@pytest.fixture
def verifier(pgp_key: PgpKey) -> Iterator[PgpVerifyHome]:
    """A GNUPGHOME trusting only the default release key."""
    with PgpVerifyHome([pgp_key]) as home:
        yield home


@pytest.fixture
def allowed(tmp_path: Path, ssh_key: SshKey) -> Path:
    """An allowed_signers file trusting only the default SSH release key."""
    return write_allowed_signers(tmp_path / "allowed_signers", [ssh_key])


def _verify(
    repo: GitRepo, kind: str, rev: str, allowed: Path, pgp: PgpVerifyHome
) -> subprocess.CompletedProcess[bytes]:
    return repo.verify(kind, rev, allowed_signers=allowed, pgp=pgp)  # type: ignore[arg-type]


def _signers(kind: str, pgp_keys: PgpKeyFactory, ssh_keys: SshKeyFactory) -> tuple[Signer, str]:
    """(signer, signature armor marker) for a parametrised signer kind."""
    if kind.startswith("ssh-"):
        algo = kind.removeprefix("ssh-")
        return SshSigner(ssh_keys("release", algo)), "SSH SIGNATURE"  # type: ignore[arg-type]
    algo = kind.removeprefix("pgp-")
    return PgpSigner(pgp_keys("Release Signer", algo)), "PGP SIGNATURE"  # type: ignore[arg-type]


# -- genuine signatures ----------------------------------------------------------


@pytest.mark.parametrize("object_format", FORMATS)
@pytest.mark.parametrize("kind", ["ssh-ed25519", "ssh-ecdsa", "pgp-ed25519", "pgp-rsa2048"])
def test_signed_commit_and_tag_verify(
    kind: str,
    object_format: str,
    tmp_path: Path,
    pgp_keys: PgpKeyFactory,
    ssh_keys: SshKeyFactory,
) -> None:
    signer, marker = _signers(kind, pgp_keys, ssh_keys)
    repo = release_repo(tmp_path / "r", signer, object_format=object_format)  # type: ignore[arg-type]
    allowed = write_allowed_signers(tmp_path / "allowed", [ssh_keys("release", "ed25519")])
    if isinstance(signer, SshSigner):
        allowed = write_allowed_signers(tmp_path / "allowed", [signer.key])
    with PgpVerifyHome([pgp_keys("Release Signer", "ed25519")]) as pgp:
        if isinstance(signer, PgpSigner):
            pgp.add(signer.key)
        for kind_, rev in [("commit", "HEAD"), ("commit", "HEAD~1"), ("tag", "v1.0.0")]:
            proc = _verify(repo, kind_, rev, allowed, pgp)
            assert proc.returncode == 0, proc.stderr.decode()

    assert repo.object_format == object_format
    assert len(repo.head()) == (40 if object_format == "sha1" else 64)
    commit = repo.cat_file("HEAD").decode()
    # What git 2.39 writes: "gpgsig" in SHA-1 repos, "gpgsig-sha256" in SHA-256 repos.
    header = "gpgsig" if object_format == "sha1" else "gpgsig-sha256"
    assert f"\n{header} -----BEGIN {marker}-----\n" in commit
    assert ("\ngpgsig " in commit) == (object_format == "sha1")
    tag = repo.cat_file("v1.0.0").decode()
    assert tag.startswith(f"object {repo.head()}\ntype commit\ntag v1.0.0\n")
    assert f"\n-----BEGIN {marker}-----\n" in tag
    assert repo.object_type("refs/tags/v1.0.0") == "tag"


def test_ssh_signature_verifies_with_ssh_keygen_directly(
    git_repo: GitRepo, ssh_key: SshKey, allowed: Path, tmp_path: Path
) -> None:
    """The tag payload is everything before the armor; ssh-keygen agrees with git."""
    git_repo.commit({"a.txt": b"a\n"}, "a")
    git_repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    raw = git_repo.cat_file("v1.0.0")
    cut = raw.index(b"-----BEGIN SSH SIGNATURE-----")
    sig = tmp_path / "sig"
    sig.write_bytes(raw[cut:])
    cmd = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", ssh_key.principal]
    proc = subprocess.run(
        [*cmd, "-n", "git", "-s", str(sig)], input=raw[:cut], capture_output=True, env=ssh_env()
    )
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run(
        [*cmd, "-n", "git", "-s", str(sig)],
        input=raw[:cut] + b"x",
        capture_output=True,
        env=ssh_env(),
    )
    assert bad.returncode != 0


def test_deterministic_history(make_git_repo: Callable[..., GitRepo], ssh_key: SshKey) -> None:
    """Same inputs, same object ids: dates and identities are fixed, ed25519 is deterministic."""
    ids = []
    for name in ("one", "two"):
        repo = make_git_repo(name)
        repo.commit({"a.txt": b"a\n"}, "first")
        repo.commit({"b/c.txt": b"c\n"}, "second", sign=SshSigner(ssh_key))
        ids.append((repo.head(), repo.tag("v1.0.0", sign=SshSigner(ssh_key))))
    assert ids[0] == ids[1]


# -- forgeries that git itself rejects -------------------------------------------------


def test_unsigned_commit_and_tag_fail(
    git_repo: GitRepo, allowed: Path, verifier: PgpVerifyHome
) -> None:
    git_repo.commit({"a.txt": b"a\n"}, "unsigned")
    git_repo.tag("v1.0.0")  # annotated, unsigned
    assert b"gpgsig" not in git_repo.cat_file("HEAD")
    assert _verify(git_repo, "commit", "HEAD", allowed, verifier).returncode != 0
    proc = _verify(git_repo, "tag", "v1.0.0", allowed, verifier)
    assert proc.returncode != 0
    assert b"no signature found" in proc.stderr


def test_unknown_ssh_key_fails(
    git_repo: GitRepo, ssh_keys: SshKeyFactory, allowed: Path, verifier: PgpVerifyHome
) -> None:
    intruder = SshSigner(ssh_keys("intruder"))
    git_repo.commit({"a.txt": b"a\n"}, "by intruder", sign=intruder)
    git_repo.tag("v1.0.0", sign=intruder)
    for kind, rev in [("commit", "HEAD"), ("tag", "v1.0.0")]:
        proc = _verify(git_repo, kind, rev, allowed, verifier)
        # Trap: git prints 'Good "git" signature' (the math is fine), then fails.
        assert proc.returncode != 0
        assert b"No principal matched" in proc.stderr


def test_unknown_pgp_key_fails(
    git_repo: GitRepo, pgp_keys: PgpKeyFactory, allowed: Path, verifier: PgpVerifyHome
) -> None:
    intruder = PgpSigner(pgp_keys("Intruder"))
    git_repo.commit({"a.txt": b"a\n"}, "by intruder", sign=intruder)
    git_repo.tag("v1.0.0", sign=intruder)
    for kind, rev in [("commit", "HEAD"), ("tag", "v1.0.0")]:
        proc = _verify(git_repo, kind, rev, allowed, verifier)
        assert proc.returncode != 0
        assert b"No public key" in proc.stderr


@pytest.mark.parametrize("state", ["expired", "revoked"])
def test_expired_or_revoked_pgp_key_fails_in_git_but_not_in_gpg_exit_code(
    state: str, git_repo: GitRepo, pgp_keys: PgpKeyFactory, allowed: Path
) -> None:
    key = pgp_keys("Release Signer", expired=state == "expired", revoked=state == "revoked")
    git_repo.commit({"a.txt": b"a\n"}, f"by {state} key", sign=PgpSigner(key))
    with PgpVerifyHome([key]) as pgp:
        proc = _verify(git_repo, "commit", "HEAD", allowed, pgp)
        assert proc.returncode != 0
        raw = git_repo.verify("commit", "HEAD", pgp=pgp, raw=True).stderr.decode()
        status = "EXPKEYSIG" if state == "expired" else "REVKEYSIG"
        assert f"[GNUPG:] {status} " in raw
        # Trap: gpg itself exits 0 for a good signature by an expired/revoked key.
        data = b"payload\n"
        sig = key.sign_detached(data)
        sig_path = git_repo.path.parent / "payload.sig"
        sig_path.write_bytes(sig)
        direct = pgp.verify(str(sig_path), "-", input=data)
        assert direct.returncode == 0
        assert f"[GNUPG:] {status} ".encode() in direct.stdout
        assert b"[GNUPG:] VALIDSIG " in direct.stdout


def test_lightweight_tag_fails(git_repo: GitRepo, ssh_key: SshKey, allowed: Path) -> None:
    git_repo.commit({"a.txt": b"a\n"}, "signed", sign=SshSigner(ssh_key))
    oid = git_repo.tag("v1.0.0", annotated=False)
    assert oid == git_repo.head()
    assert git_repo.object_type("refs/tags/v1.0.0") == "commit"
    proc = git_repo.verify("tag", "v1.0.0", allowed_signers=allowed)
    assert proc.returncode != 0
    assert b"cannot verify a non-tag object" in proc.stderr
    with pytest.raises(TypeError):
        git_repo.tag("v1.0.1", sign=SshSigner(ssh_key), annotated=False)


def test_tampered_tag_object_fails(git_repo: GitRepo, ssh_key: SshKey, allowed: Path) -> None:
    git_repo.commit({"a.txt": b"a\n"}, "c")
    git_repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    raw = git_repo.cat_file("v1.0.0").replace(b"tag v1.0.0\n", b"tag v2.0.0\n")
    forged = git_repo.write_object("tag", raw)
    git_repo.update_ref("refs/tags/v2.0.0", forged)
    proc = git_repo.verify("tag", "v2.0.0", allowed_signers=allowed)
    assert proc.returncode != 0
    assert b"incorrect signature" in proc.stderr


# -- traps that git's verification does NOT catch ----------------------------------------


@pytest.mark.parametrize("object_format", FORMATS)
def test_repushed_tag_passes_git_but_names_differ(
    object_format: str, make_git_repo: Callable[..., GitRepo], ssh_key: SshKey, allowed: Path
) -> None:
    repo = make_git_repo(object_format=object_format)
    repo.commit({"a.txt": b"a\n"}, "c", sign=SshSigner(ssh_key))
    original = repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    assert repo.retag("v1.0.0", "v2.0.0") == original
    assert repo.rev_parse("refs/tags/v2.0.0") == original  # same tag object
    proc = repo.verify("tag", "v2.0.0", allowed_signers=allowed)
    assert proc.returncode == 0, proc.stderr  # git is happy ...
    assert b"\ntag v1.0.0\n" in repo.cat_file("refs/tags/v2.0.0")  # ... but the name is v1.0.0


def test_tag_elsewhere_than_head_passes_git(
    git_repo: GitRepo, ssh_key: SshKey, allowed: Path
) -> None:
    signer = SshSigner(ssh_key)
    first = git_repo.commit({"a.txt": b"a\n"}, "released", sign=signer)
    git_repo.commit({"a.txt": b"unreleased\n"}, "after the release", sign=signer)
    git_repo.tag("v1.0.0", target="HEAD~1", sign=signer)
    assert git_repo.verify("tag", "v1.0.0", allowed_signers=allowed).returncode == 0
    assert git_repo.rev_parse("v1.0.0^{commit}") == first != git_repo.head()


def test_modified_worktree_passes_git(git_repo: GitRepo, ssh_key: SshKey, allowed: Path) -> None:
    git_repo.commit({"deploy.yaml": b"image: good\n"}, "signed", sign=SshSigner(ssh_key))
    git_repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    git_repo.modify_worktree({"deploy.yaml": b"image: evil\n", "extra.yaml": b"x: 1\n"})
    assert git_repo.verify("commit", "HEAD", allowed_signers=allowed).returncode == 0
    assert git_repo.verify("tag", "v1.0.0", allowed_signers=allowed).returncode == 0
    assert git_repo.status_porcelain().splitlines() == [" M deploy.yaml", "?? extra.yaml"]


def test_expired_ssh_key_passes_git_at_signer_chosen_time(
    git_repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    """git verifies SSH keys at the committer date, which the signer writes.

    Fixture dates are 2025-01-01; a key valid only before 2025-06-01 (expired
    today) still passes git. Verified at the real time, it fails.
    """
    git_repo.commit({"a.txt": b"a\n"}, "backdated", sign=SshSigner(ssh_key))
    line = ssh_key.allowed_signers_line(valid_before="20250601")
    allowed = write_allowed_signers(tmp_path / "expiring", [line])
    assert git_repo.verify("commit", "HEAD", allowed_signers=allowed).returncode == 0

    long_gone = write_allowed_signers(
        tmp_path / "expired", [ssh_key.allowed_signers_line(valid_before="20200101")]
    )
    proc = git_repo.verify("commit", "HEAD", allowed_signers=long_gone)
    assert proc.returncode != 0
    assert b"key has expired" in proc.stderr

    raw = git_repo.cat_file("HEAD").decode()
    head, _, rest = raw.partition("\ngpgsig ")
    sig_lines, _, tail = rest.partition("\n\n")
    payload = (head + "\n\n" + tail).encode()
    signature = "\n".join(ln.removeprefix(" ") for ln in sig_lines.split("\n")) + "\n"
    (tmp_path / "commit.sig").write_text(signature)
    cmd = ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", ssh_key.principal]
    now = subprocess.run(
        [*cmd, "-n", "git", "-s", str(tmp_path / "commit.sig")],
        input=payload,
        capture_output=True,
        env=ssh_env(),
    )
    assert now.returncode != 0
    assert b"key has expired" in now.stderr


# -- isolation and helpers ---------------------------------------------------------------


def test_environment_does_not_leak(
    git_repo: GitRepo, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pgp_key: PgpKey
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[commit]\n\tgpgsign = true\n[user]\n\tname = Leak\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Leak")
    git_repo.commit({"a.txt": b"a\n"}, "plain")
    raw = git_repo.cat_file("HEAD")
    assert b"gpgsig" not in raw and b"Leak" not in raw
    assert "GNUPGHOME" not in os.environ or os.environ["GNUPGHOME"] != str(pgp_key.home)
    env = git_env()
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull and "GIT_DIR" not in env


def test_keys(pgp_keys: PgpKeyFactory, ssh_keys: SshKeyFactory) -> None:
    key = pgp_keys("Release Signer")
    assert pgp_keys("Release Signer") is key  # cached per session
    assert len(key.fingerprint) == 40 and key.key_id == key.fingerprint[-16:]
    assert key.public_armored().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert key.public_binary()[:1] in (b"\x98", b"\x99", b"\xc6")  # public-key packet
    revoked = pgp_keys("Release Signer", revoked=True)
    with PgpVerifyHome() as home:
        home.import_keys(revoked.public_binary())
        listing = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-keys"],
            env=home.env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert listing.splitlines()[1].startswith("pub:r:")  # imported as revoked
    ssh = ssh_keys("release", "ecdsa")
    assert ssh.public_line.startswith("ecdsa-sha2-nistp256 AAAA")
    assert ssh.fingerprint.startswith("SHA256:")
    line = ssh.allowed_signers_line(valid_after="20240101", valid_before="20300101")
    assert line == (
        f'{ssh.principal} namespaces="git",valid-after="20240101",'
        f'valid-before="20300101" {ssh.public_line}'
    )


def test_big_repo_is_fast(tmp_path: Path, ssh_key: SshKey, allowed: Path) -> None:
    started = time.monotonic()
    repo = big_repo(tmp_path / "big", sign_last_tag=SshSigner(ssh_key))
    elapsed = time.monotonic() - started
    assert repo.git("rev-list", "--count", "HEAD") == "1000"
    tags = repo.git("tag", "--list").split()
    assert len(tags) == 100
    assert repo.git("for-each-ref", "--format=%(objecttype)", "refs/tags").split() == ["tag"] * 100
    assert repo.rev_parse("v0.100.0^{commit}") == repo.head()
    assert repo.rev_parse("v0.1.0^{commit}") == repo.rev_parse("HEAD~990")
    assert repo.verify("tag", "v0.100.0", allowed_signers=allowed).returncode == 0
    assert repo.verify("tag", "v0.99.0", allowed_signers=allowed).returncode != 0  # unsigned
    assert repo.status_porcelain() == ""
    assert elapsed < 20, f"big_repo took {elapsed:.1f}s"


def test_big_repo_sha256(tmp_path: Path) -> None:
    repo = big_repo(tmp_path / "big256", commits=50, tags=5, object_format="sha256")
    assert repo.object_format == "sha256"
    assert len(repo.head()) == 64
    assert repo.git("tag", "--list").split() == [f"v0.{i}.0" for i in range(1, 6)]


def test_clone_and_export_tree(tmp_path: Path, ssh_key: SshKey, allowed: Path) -> None:
    repo = release_repo(tmp_path / "src", SshSigner(ssh_key))
    (repo.path / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo.path / "run.sh").chmod(0o755)
    repo.commit(message="script", sign=SshSigner(ssh_key))

    full = repo.clone(tmp_path / "full")
    assert full.head() == repo.head()
    assert full.object_type("refs/tags/v1.0.0") == "tag"
    assert full.verify("tag", "v1.0.0", allowed_signers=allowed).returncode == 0
    shallow = repo.clone(tmp_path / "shallow", depth=1, tags=False)
    assert shallow.git("rev-list", "--count", "HEAD") == "1"
    assert shallow.git("tag", "--list") == ""

    tree = repo.export_tree(tmp_path / "tree")
    assert not (tree / ".git").exists()
    assert (tree / "deploy" / "deployment.yaml").read_bytes() == repo.cat_file(
        "HEAD:deploy/deployment.yaml"
    )
    assert (tree / "run.sh").stat().st_mode & 0o777 == 0o755
    flat = repo.export_tree(tmp_path / "flat", "v1.0.0", normalize_modes=True)
    assert not (flat / "run.sh").exists()  # the tree of the tag, not of HEAD
    assert (flat / "README.md").stat().st_mode & 0o777 == 0o644
