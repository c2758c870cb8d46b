"""Rollback protection (``spec.source.git.rollback``, ADR 12) with real signed repositories.

A signed old release is still validly signed: replaying it (Argo CD's targetRevision moved
back to v1.0.0 after v1.2.0 shipped a fix) passes every signature check and must be denied
by the history check, against the last revision the gate ALLOWED for that application.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.engine import Context, Engine, GateRequest, GateResult, SourceInfo, Verifiers
from gate.report import Finding
from gate.sources.git_verifier import GitSourceVerifier
from gate.state import AllowedRevision, RollbackState, StateError
from testkit.gitrepo import GitRepo, SshSigner, release_repo
from testkit.sshkeys import SshKey
from tests.unit.helpers import deployment, make_policy, write_policy, write_source

pytestmark = pytest.mark.integration

EXEMPT = {"match": ["registry.example.com/**"], "exempt": "test image"}
APP = "demo"


def spec(
    key: SshKey, state: Path | str, *, mode: str = "descendant", audit: bool = False
) -> dict[str, Any]:
    git = {
        "require": "tag",
        "tags": ["v*"],
        "signers": ["k"],
        "rollback": {"state": str(state), "mode": mode},
    }
    out: dict[str, Any] = {
        "keys": {"k": {"ssh": key.public_line}},
        "source": {"git": git},
        "images": [EXEMPT],
    }
    if audit:
        out["mode"] = "audit"
    return out


def run(
    repo: GitRepo,
    key: SshKey,
    state: Path,
    *,
    mode: str = "descendant",
    audit: bool = False,
    app: str | None = APP,
    verifier: GitSourceVerifier | None = None,
) -> GateResult:
    engine = Engine(
        make_policy(spec(key, state, mode=mode, audit=audit)),
        Verifiers(source=verifier or GitSourceVerifier()),
    )
    source = SourceInfo(path=repo.path / "deploy", app_name=app)
    return engine.run(GateRequest(source=source))


def rollback(result: GateResult) -> list[Finding]:
    return [f for f in result.report.findings if f.check == "git.rollback"]


def reasons(result: GateResult) -> set[tuple[str, str]]:
    return {(f.outcome, f.reason) for f in rollback(result)}


def assert_allowed(result: GateResult) -> None:
    assert [(f.check, f.reason, f.detail) for f in result.report.failures] == []
    assert result.report.decision == "allow" and result.manifests


def assert_denied(result: GateResult, reason: str) -> Finding:
    assert result.report.decision == "deny", result.report.findings
    assert result.manifests is None
    failed = [f for f in rollback(result) if f.outcome == "fail"]
    assert [f.reason for f in failed] == [reason], result.report.findings
    # The replayed release is still validly signed: only the history check denies it.
    assert {f.check for f in result.report.failures} == {"git.rollback"}
    return failed[0]


def recorded(state: Path, key: str = f"argocd-app:{APP}") -> AllowedRevision | None:
    return RollbackState(state).read(key)


def release(repo: GitRepo, key: SshKey, tag: str) -> str:
    """A new signed commit with a signed release tag on it; returns the commit."""
    commit = repo.commit({"CHANGELOG.md": f"{tag}\n".encode()}, f"release {tag}", SshSigner(key))
    repo.tag(tag, sign=SshSigner(key))
    return commit


def checkout(repo: GitRepo, rev: str) -> None:
    repo.git("checkout", "-q", "--detach", rev)


@pytest.fixture
def repo(tmp_path: Path, ssh_key: SshKey) -> GitRepo:
    return release_repo(tmp_path / "r", SshSigner(ssh_key))  # v1.0.0


# -- descendant ------------------------------------------------------------------


def test_first_run_records_and_a_descendant_advances(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    v1 = repo.head()
    first = run(repo, ssh_key, state)
    assert_allowed(first)
    assert reasons(first) == {("pass", "first-revision"), ("pass", "recorded")}
    got = recorded(state)
    assert got is not None and (got.commit, got.tag, got.version) == (v1, "v1.0.0", "1.0.0")
    assert got.policy_digest.startswith("sha256:")

    v12 = release(repo, ssh_key, "v1.2.0")
    later = run(repo, ssh_key, state)
    assert_allowed(later)
    assert reasons(later) == {("pass", "descends"), ("pass", "recorded")}
    got = recorded(state)
    assert got is not None and (got.commit, got.tag) == (v12, "v1.2.0")
    # The same revision again (an Argo CD refresh) is allowed and changes nothing.
    again = run(repo, ssh_key, state)
    assert_allowed(again)
    assert ("pass", "same-revision") in reasons(again)


def test_older_signed_tag_is_a_rollback_and_does_not_advance(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    v1 = repo.head()
    v12 = release(repo, ssh_key, "v1.2.0")
    assert_allowed(run(repo, ssh_key, state))
    checkout(repo, "v1.0.0")
    denied = run(repo, ssh_key, state)
    finding = assert_denied(denied, "rollback")
    assert v12 in finding.detail and v1 in finding.detail
    assert "v1.2.0" in finding.detail and "v1.0.0" in finding.detail
    assert "ANCESTOR" in finding.detail
    # The signature did verify: it is the history that says no.
    assert any(
        f.check == "git.tag-signature" and f.outcome == "pass" for f in denied.report.findings
    )
    got = recorded(state)
    assert got is not None and got.commit == v12  # a deny never advances the state
    # ... and denying again is stable; going forward again is allowed.
    assert_denied(run(repo, ssh_key, state), "rollback")
    checkout(repo, "v1.2.0")
    assert_allowed(run(repo, ssh_key, state))


def test_a_planted_graft_does_not_make_an_old_release_descend(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    # .git arrives with the sources: a graft file there rewires git's own ancestry walk
    # (even with --no-replace-objects), so `merge-base --is-ancestor` and `rev-list` say
    # that an old maintenance release descends from the last allowed one.
    state = tmp_path / "state.db"
    repo.git("branch", "maint-1.0", "v1.0.0")
    v12 = release(repo, ssh_key, "v1.2.0")
    assert_allowed(run(repo, ssh_key, state))
    repo.git("checkout", "-q", "maint-1.0")
    v101 = release(repo, ssh_key, "v1.0.1")  # signed, but forked before v1.2.0
    assert_denied(run(repo, ssh_key, state), "rollback")
    (repo.git_dir / "info").mkdir(exist_ok=True)
    (repo.git_dir / "info" / "grafts").write_text(f"{v101} {v12}\n")
    fooled = repo.run("merge-base", "--is-ancestor", v12, v101, check=False)
    assert fooled.returncode == 0  # git itself is fooled
    finding = assert_denied(run(repo, ssh_key, state), "rollback")
    assert "diverged" in finding.detail
    got = recorded(state)
    assert got is not None and got.commit == v12


def test_force_pushed_unrelated_history_is_denied(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    v1 = repo.head()
    assert_allowed(run(repo, ssh_key, state))
    # The branch is rewritten with an unrelated, validly signed history.
    repo.git("checkout", "-q", "--orphan", "rewritten")
    repo.git("rm", "-rq", "--cached", ".")
    from testkit.gitrepo import DEMO_DEPLOYMENT, DEMO_KUSTOMIZATION

    repo.commit(
        {
            "deploy/deployment.yaml": DEMO_DEPLOYMENT,
            "deploy/kustomization.yaml": DEMO_KUSTOMIZATION,
        },
        "rewritten history",
        SshSigner(ssh_key),
    )
    repo.tag("v2.0.0", sign=SshSigner(ssh_key))
    # Here the old commit is still in the object store: a diverged history.
    local = assert_denied(run(repo, ssh_key, state), "rollback")
    assert "diverged or was rewritten" in local.detail and v1 in local.detail
    # A fresh clone of the force-pushed repository no longer has the old commit at all.
    repo.git("branch", "-f", "main", "rewritten")
    repo.git("checkout", "-q", "main")
    repo.git("tag", "-d", "v1.0.0")
    repo.git("branch", "-D", "rewritten")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    fresh = repo.clone(tmp_path / "fresh")
    assert fresh.run("cat-file", "-e", v1, check=False).returncode != 0
    gone = assert_denied(run(fresh, ssh_key, state), "rollback-unverifiable")
    assert "full clone" in gone.detail and "rewritten" in gone.detail and v1 in gone.detail
    got = recorded(state)
    assert got is not None and got.commit == v1


def test_shallow_clone_without_the_old_commit_is_unverifiable(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    v1 = repo.head()
    assert_allowed(run(repo, ssh_key, state))
    repo.commit({"CHANGELOG.md": b"unreleased\n"}, "work", SshSigner(ssh_key))
    release(repo, ssh_key, "v1.2.0")
    shallow = repo.clone(tmp_path / "shallow", depth=1)
    finding = assert_denied(run(shallow, ssh_key, state), "rollback-unverifiable")
    assert "SHALLOW" in finding.detail and v1 in finding.detail
    # The full clone of the same revision proves descent.
    full = repo.clone(tmp_path / "full")
    assert_allowed(run(full, ssh_key, state))


# -- version ---------------------------------------------------------------------


def test_version_mode(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), tag="v1.2.0")
    state = tmp_path / "state.db"
    v13 = release(repo, ssh_key, "v1.3.0")
    release(repo, ssh_key, "v1.3.1")
    checkout(repo, "v1.3.0")
    assert_allowed(run(repo, ssh_key, state, mode="version"))
    got = recorded(state)
    assert got is not None and (got.commit, got.version) == (v13, "1.3.0")

    checkout(repo, "v1.2.0")
    finding = assert_denied(run(repo, ssh_key, state, mode="version"), "rollback")
    assert "1.2.0" in finding.detail and "1.3.0" in finding.detail and v13 in finding.detail
    got = recorded(state)
    assert got is not None and got.version == "1.3.0"

    checkout(repo, "v1.3.1")
    newer = run(repo, ssh_key, state, mode="version")
    assert_allowed(newer)
    assert ("pass", "version-not-lower") in reasons(newer)
    got = recorded(state)
    assert got is not None and got.version == "1.3.1"


def test_version_mode_denies_an_unparsable_tag(tmp_path: Path, ssh_key: SshKey) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), tag="vNext")
    state = tmp_path / "state.db"
    finding = assert_denied(run(repo, ssh_key, state, mode="version"), "version-unparsable")
    assert "vNext" in finding.detail
    assert not state.exists()


def test_version_mode_denies_the_same_version_at_another_commit(
    tmp_path: Path, ssh_key: SshKey
) -> None:
    repo = release_repo(tmp_path / "r", SshSigner(ssh_key), tag="v1.3.0")
    state = tmp_path / "state.db"
    assert_allowed(run(repo, ssh_key, state, mode="version"))
    repo.commit({"CHANGELOG.md": b"other content\n"}, "re-release", SshSigner(ssh_key))
    repo.tag("v1.3.0", sign=SshSigner(ssh_key), force=True)
    finding = assert_denied(run(repo, ssh_key, state, mode="version"), "rollback")
    assert "another commit" in finding.detail


# -- audit, state failures -------------------------------------------------------


def test_audit_mode_warns_and_does_not_advance(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    v12 = release(repo, ssh_key, "v1.2.0")
    assert_allowed(run(repo, ssh_key, state))
    checkout(repo, "v1.0.0")
    audited = run(repo, ssh_key, state, audit=True)
    assert audited.report.decision == "allow" and audited.manifests
    assert ("warn", "rollback") in reasons(audited)
    got = recorded(state)
    assert got is not None and got.commit == v12
    # Even a clean audit run does not move the baseline.
    release(repo, ssh_key, "v1.3.0")  # on top of v1.0.0: diverges from v1.2.0
    checkout(repo, "v1.2.0")
    v13 = release(repo, ssh_key, "v1.3.1")
    clean = run(repo, ssh_key, state, audit=True)
    assert clean.report.decision == "allow"
    assert reasons(clean) == {("pass", "descends")}
    got = recorded(state)
    assert got is not None and got.commit == v12 != v13


def test_corrupt_state_is_exit_3_never_a_first_run(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    state.write_bytes(b"garbage, not an SQLite database\n" * 8)
    result = run(repo, ssh_key, state)
    assert result.exit_code == 3 and result.manifests is None
    assert reasons(result) == {("fail", "state-unavailable")}
    assert state.read_bytes().startswith(b"garbage")
    # The CLI says the same with its exit code.
    policy = write_policy(tmp_path / "policy.yaml", spec(ssh_key, state))
    assert main(["verify", str(repo.path / "deploy"), "--policy", str(policy)]) == 3


def test_state_directory_missing_is_exit_3(repo: GitRepo, ssh_key: SshKey, tmp_path: Path) -> None:
    result = run(repo, ssh_key, tmp_path / "not-mounted" / "state.db")
    assert result.exit_code == 3
    assert reasons(result) == {("fail", "state-unavailable")}


class _ConcurrentRun(GitSourceVerifier):
    """Another run of the same application records a revision while this one verifies."""

    def __init__(self, state: Path, other: AllowedRevision) -> None:
        super().__init__()
        self.state, self.other = state, other

    def verify_source(self, ctx: Context) -> None:
        super().verify_source(ctx)
        RollbackState(self.state).advance(f"argocd-app:{APP}", None, self.other)


def test_a_failed_write_after_the_allow_withholds_the_manifests(
    repo: GitRepo, ssh_key: SshKey, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    other = AllowedRevision("f" * 40, "v9.0.0", "9.0.0", "sha256:" + "0" * 64, "2026-01-01")
    result = run(repo, ssh_key, state, verifier=_ConcurrentRun(state, other))
    assert result.exit_code == 3 and result.manifests is None
    assert ("fail", "state-unavailable") in reasons(result)
    got = recorded(state)
    assert got is not None and got.commit == "f" * 40  # the other run's record stands


# -- the engine's post-decision hook -----------------------------------------------


class _Registers:
    def __init__(self, fail: bool = False) -> None:
        self.ran = 0
        self.fail = fail

    def verify_source(self, ctx: Context) -> None:
        ctx.on_allow.append(("git.rollback", self._action))

    def _action(self) -> None:
        self.ran += 1
        if self.fail:
            raise StateError("cannot write")


def _hook_run(
    tmp_path: Path, verifier: _Registers, *images: str, audit: bool = False
) -> GateResult:
    src = write_source(tmp_path / "src", deployment("web", *images))
    policy: dict[str, Any] = {
        "keys": {"k": {"ssh": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBase64Key k"}},
        "source": {"git": {"signers": ["k"]}},
        "images": [EXEMPT],
    }
    if audit:
        policy["mode"] = "audit"
    engine = Engine(make_policy(policy), Verifiers(source=verifier))
    return engine.run(GateRequest(source=SourceInfo(path=src)))


def test_hook_runs_only_on_allow(tmp_path: Path) -> None:
    allow = _Registers()
    assert _hook_run(tmp_path / "a", allow, "registry.example.com/app:1").exit_code == 0
    assert allow.ran == 1
    deny = _Registers()
    assert _hook_run(tmp_path / "d", deny, "docker.io/other:1").exit_code == 1  # no-policy
    assert deny.ran == 0
    # Audit mode turns the failure into a warning and allows: the engine still runs the
    # hook (verifiers decide; the Git verifier registers nothing in audit mode).
    audited = _Registers()
    assert _hook_run(tmp_path / "w", audited, "docker.io/other:1", audit=True).exit_code == 0
    assert audited.ran == 1


def test_a_failing_hook_is_exit_3_without_manifests(tmp_path: Path) -> None:
    result = _hook_run(tmp_path, _Registers(fail=True), "registry.example.com/app:1")
    assert result.exit_code == 3 and result.manifests is None
    assert [(f.check, f.reason) for f in result.report.failures] == [
        ("git.rollback", "state-unavailable")
    ]


# -- gate generate: one state row per Argo CD application ---------------------------


def test_generate_keys_the_state_by_argocd_app_name(
    repo: GitRepo,
    ssh_key: SshKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    policy = write_policy(policy_dir / "policy.yaml", spec(ssh_key, "state.db"))  # beside it
    state = policy_dir / "state.db"
    v1 = repo.head()
    v12 = release(repo, ssh_key, "v1.2.0")
    monkeypatch.setenv("GATE_POLICY", str(policy))
    monkeypatch.setenv("ARGOCD_APP_SOURCE_PATH", "deploy")
    monkeypatch.setenv("ARGOCD_APP_SOURCE_REPO_URL", "https://git.example.com/acme/app.git")
    monkeypatch.chdir(repo.path / "deploy")

    def generate(app: str) -> tuple[int, str, str]:
        monkeypatch.setenv("ARGOCD_APP_NAME", app)
        code = main(["generate"])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    code, out, _ = generate("app-a")
    assert code == 0 and "kind: Deployment" in out
    checkout(repo, "v1.0.0")
    code, out, _ = generate("app-b")  # another app from the same repository: its own row
    assert code == 0 and out
    code, out, err = generate("app-a")  # app-a already runs v1.2.0
    assert code == 1 and out == ""
    assert "git.rollback" in err and "rollback" in err
    a = RollbackState(state).read("argocd-app:app-a")
    b = RollbackState(state).read("argocd-app:app-b")
    assert a is not None and a.commit == v12
    assert b is not None and b.commit == v1
    with sqlite3.connect(state) as conn:
        assert conn.execute("SELECT count(*) FROM last_allowed").fetchone()[0] == 2
