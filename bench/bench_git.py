"""Benchmark: Git source verification of a 1,000-commit, 100-tag repository.

The repository (``testkit.gitrepo.big_repo``) has 100 annotated release tags spread
over 1,000 commits; the last one, on HEAD, is re-signed with an SSH key. The policy
requires a signed release tag (``v*``) and the tree binding runs over the whole
checkout. What is timed is ``GitSourceVerifier.verify_source`` alone: listing tags,
reading and hash-checking the tag and commit objects, ``ssh-keygen -Y verify``,
walking the signed tree and hashing the working tree; rendering is not included.

Run: ``python bench/bench_git.py [COMMITS] [TAGS] [ROUNDS]``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testkit, from a checkout

from gate.engine import Context, Findings, GateRequest, SourceInfo
from gate.policy import parse_policy
from gate.report import Report
from gate.sources.git_verifier import GitSourceVerifier
from testkit.gitrepo import SshSigner, big_repo
from testkit.sshkeys import SshKeyFactory


def main(commits: int = 1000, tags: int = 100, rounds: int = 21) -> None:
    keys = SshKeyFactory()
    try:
        key = keys("bench")
        with tempfile.TemporaryDirectory(prefix="bench-git-") as tmp:
            started = time.monotonic()
            repo = big_repo(
                Path(tmp) / "repo", commits=commits, tags=tags, sign_last_tag=SshSigner(key)
            )
            build_s = time.monotonic() - started
            policy = parse_policy(
                (
                    "apiVersion: gitops-gate.dev/v1alpha1\nkind: GatePolicy\n"
                    "metadata: {name: bench}\nspec:\n"
                    f"  keys: {{release: {{ssh: '{key.public_line}'}}}}\n"
                    "  source: {git: {require: tag, tags: ['v*'], signers: [release]}}\n"
                ).encode(),
                source="<bench>",
            )
            verifier = GitSourceVerifier()
            times: list[float] = []
            for _ in range(rounds):
                report = Report("bench", "", str(repo.path), None, None)
                ctx = Context(
                    policy,
                    GateRequest(source=SourceInfo(path=repo.path)),
                    dt.datetime.now(dt.UTC),
                    Findings(report),
                )
                t0 = time.perf_counter()
                verifier.verify_source(ctx)
                times.append((time.perf_counter() - t0) * 1000)
                if report.failures:
                    raise SystemExit(f"unexpected failures: {report.failures}")
            files = len(list((repo.path / "data").iterdir()))
            print(
                f"git source verification: {commits} commits, {tags} tags, {files} files "
                f"(repository built in {build_s:.2f} s)\n"
                f"  first (cold) run {times[0]:.1f} ms; then median "
                f"{statistics.median(times[1:]):.1f} ms, min {min(times[1:]):.1f} ms, "
                f"max {max(times[1:]):.1f} ms over {rounds - 1} rounds"
            )
    finally:
        keys.cleanup()


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    main(*args)
