"""The Git source verifier end to end: real git, gpg and ssh-keygen, the private Sigstore.

Each forgery is denied for its own reason and the genuine case is allowed, in both
object formats, with PGP, SSH and keyless (gitsign) signatures.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest

from gate.engine import Engine, GateRequest, SourceInfo, Verifiers
from gate.policy import load_policy
from gate.report import Report
from gate.sources.git_verifier import GitSourceVerifier
from gate.vsa_emit import build_statement
from testkit.gitrepo import GitRepo, PgpSigner, SshSigner, release_repo
from testkit.gitsign import GITSIGN_FORGERIES, KeylessGitSigner, keyless_tag, sign_head_commit
from testkit.pgp import PgpKey, PgpKeyFactory
from testkit.plugin_sigstore import GITHUB_ISSUER
from testkit.sigstore_authority import Authority
from testkit.sshkeys import SshKey, SshKeyFactory
from tests.unit.helpers import make_policy, write_policy

pytestmark = pytest.mark.integration

FORMATS = ["sha1", "sha256"]
WORKFLOW = "https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
EXEMPT = {"match": ["registry.example.com/**"], "exempt": "test image"}


def ssh_spec(key: SshKey) -> dict[str, Any]:
    return {"ssh": key.public_line}


def pgp_spec(key: PgpKey) -> dict[str, Any]:
    return {"pgp": key.public_armored().decode()}


KEYLESS = {"keyless": {"issuer": GITHUB_ISSUER, "subject": "https://github.com/acme/app/**"}}


def gate(
    repo: GitRepo | Path,
    keys: dict[str, Any],
    *,
    require: str = "tag",
    tags: list[str] | None = None,
    signers: list[str] | None = None,
    threshold: int = 1,
    trust_root: Path | None = None,
    revision: str | None = None,
    target: str | None = None,
    subdir: str = "deploy",
    repo_uri: str | None = None,
) -> Report:
    git: dict[str, Any] = {
        "require": require,
        "tags": tags or ["v*"],
        "signers": signers or sorted(keys),
        "threshold": threshold,
    }
    spec: dict[str, Any] = {"keys": keys, "source": {"git": git}, "images": [EXEMPT]}
    if trust_root is not None:
        spec["trustRoots"] = {"sigstore": str(trust_root)}
    root = repo.path if isinstance(repo, GitRepo) else repo
    engine = Engine(make_policy(spec), Verifiers(source=GitSourceVerifier()))
    source = SourceInfo(
        path=root / subdir, revision=revision, target_revision=target, repo=repo_uri
    )
    return engine.run(GateRequest(source=source)).report


def git_failures(report: Report) -> set[tuple[str, str]]:
    return {(f.check, f.reason) for f in report.failures if f.check.startswith("git.")}


def assert_allowed(report: Report) -> None:
    assert [(f.check, f.reason, f.detail) for f in report.failures] == []
    assert report.decision == "allow"
    checks = {f.check for f in report.findings if f.outcome == "pass"}
    assert {"git.signers", "git.tree"} <= checks


def assert_denied(report: Report, check: str, reason: str) -> None:
    assert report.decision == "deny", report.findings
    assert (check, reason) in git_failures(report), git_failures(report)


# -- genuine ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_ssh_signed_release_tag_is_allowed(tmp_path: Path, ssh_key: SshKey, fmt: str) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), object_format=fmt)
    report = gate(repo, {"release": ssh_spec(ssh_key)})
    assert_allowed(report)
    tag = next(f for f in report.findings if f.check == "git.tag-signature")
    assert tag.subject == "v1.0.0" and ssh_key.fingerprint in tag.detail


@pytest.mark.parametrize("fmt", FORMATS)
def test_pgp_signed_release_tag_is_allowed(tmp_path: Path, pgp_key: PgpKey, fmt: str) -> None:
    repo = release_repo(tmp_path / "r", PgpSigner(pgp_key), object_format=fmt)
    report = gate(repo, {"ops": pgp_spec(pgp_key)})
    assert_allowed(report)
    assert any(pgp_key.fingerprint in f.detail for f in report.findings)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("signer", ["ssh", "pgp"])
def test_signed_commit_mode(
    tmp_path: Path, ssh_key: SshKey, pgp_key: PgpKey, fmt: str, signer: str
) -> None:
    git_signer = SshSigner(ssh_key) if signer == "ssh" else PgpSigner(pgp_key)
    keys = {"k": ssh_spec(ssh_key) if signer == "ssh" else pgp_spec(pgp_key)}
    repo = release_repo(tmp_path / "r", git_signer, object_format=fmt)
    assert_allowed(gate(repo, keys, require="commit"))
    assert_allowed(gate(repo, keys, require="tag-and-commit"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_keyless_tag_and_commit_are_allowed(
    tmp_path: Path, sigstore_authority: Authority, fmt: str
) -> None:
    repo = release_repo(tmp_path / "r", None, object_format=fmt, sign_commits=False)
    signer = KeylessGitSigner(sigstore_authority, WORKFLOW, GITHUB_ISSUER)
    sign_head_commit(repo, signer)
    keyless_tag(repo, "v2.0.0", signer)
    root = sigstore_authority.trusted_root_path
    assert_allowed(gate(repo, {"gha": KEYLESS}, require="tag-and-commit", trust_root=root))


# -- tag semantics ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_unsigned_annotated_tag(tmp_path: Path, ssh_key: SshKey, fmt: str) -> None:
    repo = release_repo(tmp_path / "r", None, object_format=fmt)
    assert_denied(gate(repo, {"k": ssh_spec(ssh_key)}), "git.tag-signature", "unsigned")


def test_unsigned_commit(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), sign_commits=False)
    report = gate(repo, {"k": ssh_spec(ssh_key)}, require="tag-and-commit")
    assert_denied(report, "git.commit-signature", "unsigned")


def test_lightweight_tag(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", None, tag="v0.9.0")
    repo.tag("v1.0.0", annotated=False)
    repo.git("tag", "-d", "v0.9.0")
    assert_denied(gate(repo, {"k": ssh_spec(ssh_key)}), "git.tag-signature", "lightweight-tag")


@pytest.mark.parametrize("fmt", FORMATS)
def test_retagged_release_is_a_name_mismatch(tmp_path: Path, ssh_key: SshKey, fmt: str) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), object_format=fmt)
    repo.retag("v1.0.0", "v2.0.0")
    repo.git("tag", "-d", "v1.0.0")
    assert repo.verify("tag", "v2.0.0", allowed_signers=_allowed(tmp_path, ssh_key)).returncode == 0
    report = gate(repo, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.tag-signature", "tag-name-mismatch")
    detail = next(f.detail for f in report.failures if f.reason == "tag-name-mismatch")
    assert "v1.0.0" in detail and "v2.0.0" in detail


def _allowed(tmp_path: Path, key: SshKey) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(key.allowed_signers_line("release-bot@example.test") + "\n")
    return path


def test_argo_target_tag_must_be_the_one_that_verifies(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    repo.tag("v1.0.0-rc1")  # annotated, unsigned, also at HEAD
    keys = {"k": ssh_spec(ssh_key)}
    assert_allowed(gate(repo, keys))  # the signed tag verifies; the other one is a warning
    assert_allowed(gate(repo, keys, target="v1.0.0"))
    assert_denied(gate(repo, keys, target="v1.0.0-rc1"), "git.tag-signature", "unsigned")
    denied = gate(repo, keys, target="v9.9.9")  # not in .git: shallow fetch
    assert_denied(denied, "git.metadata", "git-metadata-missing")


def test_tag_not_at_head(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    repo.commit({"deploy/extra.yaml": b"# later, unreleased\n"}, "after the release")
    report = gate(repo, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.tag-signature", "tag-not-at-head")
    # ... and when Argo CD targets the old tag while HEAD moved on.
    report = gate(repo, {"k": ssh_spec(ssh_key)}, target="v1.0.0")
    assert_denied(report, "git.tag-signature", "tag-not-at-head")


def test_no_release_tag(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), tag="nightly-1")
    assert_denied(gate(repo, {"k": ssh_spec(ssh_key)}), "git.tag-signature", "no-release-tag")
    report = gate(repo, {"k": ssh_spec(ssh_key)}, target="nightly-1")
    assert_denied(report, "git.tag-signature", "no-release-tag")


# -- signers ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_untrusted_ssh_signer(
    tmp_path: Path, ssh_key: SshKey, ssh_keys: SshKeyFactory, fmt: str
) -> None:
    intruder = ssh_keys("intruder")
    repo = release_repo(tmp_path / "r", SshSigner(intruder), object_format=fmt)
    report = gate(repo, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.tag-signature", "untrusted-signer")
    detail = next(f.detail for f in report.failures if f.reason == "untrusted-signer")
    assert intruder.fingerprint in detail and ssh_key.fingerprint in detail


@pytest.mark.parametrize("fmt", FORMATS)
def test_untrusted_pgp_signer(
    tmp_path: Path, pgp_key: PgpKey, pgp_keys: PgpKeyFactory, fmt: str
) -> None:
    intruder = pgp_keys("Intruder")
    repo = release_repo(tmp_path / "r", PgpSigner(intruder), object_format=fmt)
    report = gate(repo, {"ops": pgp_spec(pgp_key)}, require="commit")
    assert_denied(report, "git.commit-signature", "untrusted-signer")
    detail = next(f.detail for f in report.failures if f.reason == "untrusted-signer")
    assert intruder.fingerprint in detail and pgp_key.fingerprint in detail


def test_signature_kind_without_policy_keys(
    tmp_path: Path, ssh_key: SshKey, pgp_key: PgpKey
) -> None:
    repo = release_repo(tmp_path / "r", PgpSigner(pgp_key))
    assert_denied(gate(repo, {"k": ssh_spec(ssh_key)}), "git.tag-signature", "untrusted-signer")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", ["ssh", "pgp"])
def test_tampered_tag_is_a_bad_signature(
    tmp_path: Path, ssh_key: SshKey, pgp_key: PgpKey, fmt: str, kind: str
) -> None:
    signer = SshSigner(ssh_key) if kind == "ssh" else PgpSigner(pgp_key)
    keys = {"k": ssh_spec(ssh_key) if kind == "ssh" else pgp_spec(pgp_key)}
    repo = release_repo(tmp_path / "r", signer, object_format=fmt)
    raw = repo.cat_file("v1.0.0")
    forged = raw.replace(b"Release v1.0.0", b"Release v1.0.0 (hotfix)")
    repo.update_ref("refs/tags/v1.0.0", repo.write_object("tag", forged))
    assert_denied(gate(repo, keys), "git.tag-signature", "bad-signature")


def test_expired_pgp_key(tmp_path: Path, pgp_keys: PgpKeyFactory) -> None:
    old = pgp_keys("Old Signer", expired=True)
    repo = release_repo(tmp_path / "r", PgpSigner(old))
    assert_denied(gate(repo, {"old": pgp_spec(old)}), "git.tag-signature", "key-expired")


def test_revoked_pgp_key(tmp_path: Path, pgp_keys: PgpKeyFactory) -> None:
    gone = pgp_keys("Gone Signer", revoked=True)
    repo = release_repo(tmp_path / "r", PgpSigner(gone))
    assert_denied(gate(repo, {"gone": pgp_spec(gone)}), "git.tag-signature", "key-revoked")


@pytest.mark.parametrize(
    ("forgery", "reason"),
    [
        ("online-mode", "tlog-entry-missing"),
        ("set-signed-by-other-key", "tlog-invalid"),
        ("untrusted-ca", "untrusted-signer"),
        ("other-identity", "untrusted-signer"),
        ("expired-certificate", "key-expired"),
        ("corrupt-signature", "bad-signature"),
        ("sct-untrusted-log", "sct-invalid"),
        ("sct-over-other-data", "sct-invalid"),
    ],
)
def test_keyless_forgeries(
    tmp_path: Path, sigstore_authority: Authority, forgery: str, reason: str
) -> None:
    repo = release_repo(tmp_path / "r", None, object_format="sha256", sign_commits=False)
    signer = KeylessGitSigner(
        sigstore_authority, WORKFLOW, GITHUB_ISSUER, forgery=GITSIGN_FORGERIES[forgery]
    )
    keyless_tag(repo, "v2.0.0", signer)
    repo.git("tag", "-d", "v1.0.0")
    report = gate(repo, {"gha": KEYLESS}, trust_root=sigstore_authority.trusted_root_path)
    assert_denied(report, "git.tag-signature", reason)


def test_keyless_certificate_with_a_wrong_sct_is_denied(
    tmp_path: Path, sigstore_authority: Authority
) -> None:
    # Tag and commit signed by a certificate whose SCT is over other data: everything
    # else (chain, SET, identity) holds, so the SCT is the only reason to deny.
    repo = release_repo(tmp_path / "r", None, sign_commits=False)
    signer = KeylessGitSigner(
        sigstore_authority,
        WORKFLOW,
        GITHUB_ISSUER,
        forgery=GITSIGN_FORGERIES["sct-over-other-data"],
    )
    sign_head_commit(repo, signer)
    keyless_tag(repo, "v2.0.0", signer)
    repo.git("tag", "-d", "v1.0.0")
    root = sigstore_authority.trusted_root_path
    report = gate(repo, {"gha": KEYLESS}, require="tag-and-commit", trust_root=root)
    assert git_failures(report) == {
        ("git.tag-signature", "sct-invalid"),
        ("git.commit-signature", "sct-invalid"),
    }
    assert report.inputs == []


def test_trust_root_is_read_only_for_a_keyless_signature(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    missing = tmp_path / "no-such-trusted_root.json"
    keys = {"k": ssh_spec(ssh_key), "gha": KEYLESS}
    assert_allowed(gate(repo, keys, signers=["k"], trust_root=missing))
    # The same policy meeting a keyless signature needs the root, and says so.
    keyless = release_repo(tmp_path / "k", None, sign_commits=False)
    report = gate(keyless, keys, require="commit", trust_root=missing)
    assert report.decision == "deny"
    failure = next(f for f in report.failures if f.check == "git.commit-signature")
    assert failure.reason == "unsigned"  # nothing keyless to verify: still not read
    sign_head_commit(keyless, KeylessGitSigner(_authority(tmp_path), WORKFLOW, GITHUB_ISSUER))
    report = gate(keyless, keys, require="commit", trust_root=missing)
    failure = next(f for f in report.failures if f.check == "git.commit-signature")
    assert failure.reason == "policy-invalid" and str(missing) in failure.detail


def _authority(tmp_path: Path) -> Authority:
    return Authority.create(tmp_path / "sigstore")


def test_relative_trust_root_is_beside_the_policy(
    tmp_path: Path, sigstore_authority: Authority, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As for images: a relative spec.trustRoots.sigstore is beside the policy, never in
    # the working directory (which may be the very source being verified).
    repo = release_repo(tmp_path / "r", None, sign_commits=False)
    sign_head_commit(repo, KeylessGitSigner(sigstore_authority, WORKFLOW, GITHUB_ISSUER))
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    shutil.copy(sigstore_authority.trusted_root_path, policy_dir / "root.json")
    rogue = _authority(tmp_path)
    shutil.copy(rogue.trusted_root_path, repo.path / "root.json")
    repo.git("add", "root.json")
    spec: dict[str, Any] = {
        "keys": {"gha": KEYLESS},
        "source": {"git": {"require": "commit", "signers": ["gha"]}},
        "trustRoots": {"sigstore": "root.json"},
        "images": [EXEMPT],
    }
    policy = load_policy(write_policy(policy_dir / "policy.yaml", spec))
    monkeypatch.chdir(repo.path)
    engine = Engine(policy, Verifiers(source=GitSourceVerifier()))
    report = engine.run(GateRequest(source=SourceInfo(path=repo.path))).report
    assert not {c for c, _ in git_failures(report) if c != "git.tree"}, report.failures


# -- VSA inputs ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_verified_signatures_are_vsa_inputs(tmp_path: Path, ssh_key: SshKey, fmt: str) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), object_format=fmt)
    keys = {"k": ssh_spec(ssh_key)}
    tag_raw, commit_raw = repo.cat_file("refs/tags/v1.0.0"), repo.cat_file(repo.head())
    # The digest is of the raw signed object, as `git cat-file` prints it, in either format.
    expected = {
        "refs/tags/v1.0.0": "sha256:" + hashlib.sha256(tag_raw).hexdigest(),
        repo.head(): "sha256:" + hashlib.sha256(commit_raw).hexdigest(),
    }
    named = gate(repo, keys, require="tag-and-commit", repo_uri="https://github.com/acme/app")
    assert_allowed(named)
    assert {(i.uri, i.digest) for i in named.inputs} == {
        (f"git+https://github.com/acme/app@{rev}", d) for rev, d in expected.items()
    }
    local = gate(repo, keys, require="tag-and-commit")
    base = f"git+{repo.path.resolve().as_uri()}"
    assert {(i.uri, i.digest) for i in local.inputs} == {
        (f"{base}@{rev}", d) for rev, d in expected.items()
    }
    # ... and they reach the VSA's inputAttestations as in-toto ResourceDescriptors.
    policy = make_policy({"keys": keys, "images": [EXEMPT]})
    stmt = build_statement(named, policy)
    assert {
        "uri": f"git+https://github.com/acme/app@{repo.head()}",
        "digest": {"sha256": hashlib.sha256(commit_raw).hexdigest()},
    } in stmt["predicate"]["inputAttestations"]
    # Only what verified is recorded: a commit-only policy lists the commit alone.
    assert [i.uri for i in gate(repo, keys, require="commit").inputs] == [f"{base}@{repo.head()}"]


def test_failed_signatures_are_not_vsa_inputs(
    tmp_path: Path, ssh_key: SshKey, ssh_keys: SshKeyFactory
) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_keys("intruder")))
    report = gate(repo, {"k": ssh_spec(ssh_key)}, require="tag-and-commit")
    assert report.decision == "deny" and report.inputs == []


# -- threshold -------------------------------------------------------------------


def test_threshold_counts_distinct_keys(
    tmp_path: Path, ssh_key: SshKey, pgp_key: PgpKey, ssh_keys: SshKeyFactory
) -> None:
    second = ssh_keys("second")
    keys = {"a": ssh_spec(ssh_key), "b": pgp_spec(pgp_key), "c": ssh_spec(second)}
    # Tag and commit by ONE key: two signatures, one signer.
    repo = release_repo(tmp_path / "one", SshSigner(ssh_key))
    report = gate(repo, keys, require="tag-and-commit", threshold=2)
    assert_denied(report, "git.signers", "threshold-not-met")
    # Tag by one key, commit by another: two signers.
    two = GitRepo.init(tmp_path / "two")
    two.commit(
        {"deploy/app.yaml": b"kind: List\napiVersion: v1\nitems: []\n"}, sign=PgpSigner(pgp_key)
    )
    two.tag("v1.0.0", sign=SshSigner(ssh_key))
    assert_allowed(gate(two, keys, require="tag-and-commit", threshold=2))
    # Two release tags at HEAD by two keys also count twice.
    two.tag("v1.0.0-c", sign=SshSigner(second))
    assert_allowed(gate(two, keys, threshold=2))


def test_same_key_under_two_names_counts_once(tmp_path: Path, ssh_key: SshKey) -> None:
    keys = {"a": ssh_spec(ssh_key), "b": ssh_spec(ssh_key)}
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    report = gate(repo, keys, require="tag-and-commit", threshold=2)
    assert_denied(report, "git.signers", "threshold-not-met")


# -- tree binding, revision, metadata --------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "change",
    [
        {"deploy/deployment.yaml": b"kind: Pod\n"},  # modified
        {"deploy/evil.yaml": b"kind: Pod\n"},  # added
        {"deploy/kustomization.yaml": None},  # deleted
        {"README.md": b"outside the app path, still not what was signed\n"},
    ],
)
def test_worktree_modified_after_checkout(
    tmp_path: Path, ssh_key: SshKey, fmt: str, change: dict[str, bytes | None]
) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), object_format=fmt)
    repo.modify_worktree(change)
    report = gate(repo, {"k": ssh_spec(ssh_key)}, require="tag-and-commit")
    assert_denied(report, "git.tree", "tree-mismatch")
    # The signatures themselves are still valid: only the files betray the change.
    assert not {r for c, r in git_failures(report) if c != "git.tree"}
    detail = next(f.detail for f in report.failures if f.check == "git.tree")
    assert next(iter(change)) in detail


def test_modes_and_symlinks(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = GitRepo.init(tmp_path / "r")
    (repo.path / "deploy").mkdir()
    (repo.path / "deploy" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo.path / "deploy" / "run.sh").chmod(0o755)
    (repo.path / "deploy" / "link.yaml").symlink_to("app.yaml")
    repo.commit({"deploy/app.yaml": b"apiVersion: v1\nkind: List\nitems: []\n"})
    repo.tag("v1.0.0", sign=SshSigner(ssh_key))
    # Argo CD sends every file as 0644: modes must not matter.
    (repo.path / "deploy" / "run.sh").chmod(0o644)
    assert_allowed(gate(repo, {"k": ssh_spec(ssh_key)}))
    # A symlink re-pointed elsewhere is a different file to the renderer.
    (repo.path / "deploy" / "link.yaml").unlink()
    (repo.path / "deploy" / "link.yaml").symlink_to("/etc/passwd")
    assert_denied(gate(repo, {"k": ssh_spec(ssh_key)}), "git.tree", "tree-mismatch")


def test_replace_refs_are_ignored(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    signed = repo.head()
    # An unsigned commit with other files, swapped in for the signed one by refs/replace.
    evil = repo.commit({"deploy/deployment.yaml": b"kind: Pod\n"}, "evil")
    repo.git("replace", signed, evil)
    repo.git("update-ref", "HEAD", signed)
    report = gate(repo, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.tree", "tree-mismatch")


def test_revision_must_be_head(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    keys = {"k": ssh_spec(ssh_key)}
    assert_allowed(gate(repo, keys, revision=repo.head()))
    parent = repo.rev_parse("HEAD~1")
    assert_denied(gate(repo, keys, revision=parent), "git.revision", "revision-not-head")


def test_missing_git_metadata(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    copy = tmp_path / "no-git"
    shutil.copytree(repo.path, copy, ignore=shutil.ignore_patterns(".git"))
    report = gate(copy, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.metadata", "git-metadata-missing")
    detail = next(f.detail for f in report.failures if f.check == "git.metadata")
    assert "reposerver.plugin.tar.exclusions" in detail


def test_shallow_clone_without_tags(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    shallow = tmp_path / "shallow"
    GitRepo(tmp_path).git(
        "clone", "-q", "--depth=1", "--no-tags", f"file://{repo.path}", str(shallow)
    )
    report = gate(shallow, {"k": ssh_spec(ssh_key)})
    assert_denied(report, "git.metadata", "git-metadata-missing")


def test_now_is_the_engine_clock(tmp_path: Path, ssh_key: SshKey) -> None:
    # SSH validity is judged at the gate's clock; the committer date (2025) is the
    # signer's choice and plays no part.
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key))
    policy = make_policy(
        {
            "keys": {"k": ssh_spec(ssh_key)},
            "source": {"git": {"signers": ["k"], "tags": ["v*"]}},
            "images": [EXEMPT],
        }
    )
    fixed = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    engine = Engine(policy, Verifiers(source=GitSourceVerifier()), clock=lambda: fixed)
    report = engine.run(GateRequest(source=SourceInfo(path=repo.path / "deploy"))).report
    assert_allowed(report)
