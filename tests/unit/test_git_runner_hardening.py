"""The hardened git runner ignores grafts and never fetches (real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gate.sources.git import GitCheckout, git_env


def _git(repo: Path, *args: str) -> str:
    env = {
        **git_env(),
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@x",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@x",
        "GIT_GRAFT_FILE": str(repo / ".git" / "info" / "grafts"),
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_grafts_do_not_rewrite_parents(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    second = _git(repo, "rev-parse", "HEAD")
    # A planted grafts file makes `second` a root commit for a plain git.
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "grafts").write_text(f"{second}\n")
    assert _git(repo, "rev-list", "HEAD") == second
    checkout = GitCheckout.open(repo)
    assert checkout.run("rev-list", "HEAD").decode().split() == [second, first]
