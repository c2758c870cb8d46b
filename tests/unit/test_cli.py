"""The CLI contract: verbs, exit codes, what goes to stdout and what to stderr."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gate.cli import main
from tests.unit.helpers import deployment, write_policy, write_source

EXEMPT = {"match": ["docker.io/library/busybox"], "exempt": "vendor image"}


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path, Path]:
    ok = write_source(tmp_path / "ok", deployment("web", "busybox:1.36"))
    bad = write_source(tmp_path / "bad", deployment("web", "busybox:1.36", "redis:7"))
    policy = write_policy(tmp_path / "policy.yaml", {"images": [EXEMPT]})
    return ok, bad, policy


def test_verify_allow_writes_manifests(world, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ok, _, policy = world
    out = tmp_path / "out.yaml"
    report = tmp_path / "report.json"
    code = main(
        [
            "verify",
            str(ok),
            "--policy",
            str(policy),
            "--manifests",
            str(out),
            "--report",
            str(report),
        ]
    )
    cap = capsys.readouterr()
    assert code == 0
    assert cap.out == ""  # text mode: nothing on stdout
    assert "ALLOW" in cap.err
    assert yaml.safe_load(out.read_text())["kind"] == "Deployment"
    assert json.loads(report.read_text())["decision"] == "allow"


def test_verify_deny_writes_no_manifests(world, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _, bad, policy = world
    out = tmp_path / "out.yaml"
    out.write_text("stale: manifests from an earlier allow\n")
    code = main(["verify", str(bad), "--policy", str(policy), "--manifests", str(out)])
    cap = capsys.readouterr()
    assert code == 1
    assert not out.exists()
    assert "DENY" in cap.err and "no-policy" in cap.err and "to fix" in cap.err


def test_verify_json_report_on_stdout(world, capsys) -> None:  # type: ignore[no-untyped-def]
    _, bad, policy = world
    code = main(["verify", str(bad), "--policy", str(policy), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["decision"] == "deny"
    assert report["policy"]["name"] == "test"
    assert {f["reason"] for f in report["findings"] if f["outcome"] == "fail"} == {"no-policy"}


def test_manifests_to_stdout(world, capsys) -> None:  # type: ignore[no-untyped-def]
    ok, _, policy = world
    assert main(["verify", str(ok), "--policy", str(policy), "--manifests", "-"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "Deployment"


@pytest.mark.parametrize(
    "argv",
    [
        ["verify"],  # --policy is required
        ["verify", ".", "--policy", "p", "--format", "xml"],
        ["verify", ".", "--policy", "p", "--nope"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(argv) == 2
    assert capsys.readouterr().out == ""


def test_json_and_stdout_manifests_conflict(world) -> None:  # type: ignore[no-untyped-def]
    ok, _, policy = world
    assert (
        main(["verify", str(ok), "--policy", str(policy), "--format", "json", "--manifests", "-"])
        == 2
    )


def test_invalid_policy_exit_2(world, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ok, _, _ = world
    bad = write_policy(tmp_path / "bad.yaml", {"images": [{"match": ["x"]}], "treshold": 2})
    assert main(["verify", str(ok), "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "spec.treshold" in err and "spec.images[0]" in err


def test_missing_source_dir_exit_2(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, policy = world
    assert main(["verify", str(tmp_path / "nope"), "--policy", str(policy)]) == 2


def test_policy_check(world, capsys) -> None:  # type: ignore[no-untyped-def]
    _, _, policy = world
    assert main(["policy", "check", str(policy)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "EXEMPT" in out
    assert "the Git revision is NOT checked" in out


def test_policy_check_invalid(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "p.yaml"
    p.write_text("apiVersion: gitops-gate.dev/v1alpha1\nkind: GatePolicy\n")
    assert main(["policy", "check", str(p)]) == 2
    assert "metadata" in capsys.readouterr().err


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["version"]) == 0
    assert capsys.readouterr().out.startswith("gitops-gate ")


def _argo_env(policy: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGOCD_", "GATE_"))}
    env.update(
        GATE_POLICY=str(policy),
        ARGOCD_APP_NAME="web",
        ARGOCD_APP_REVISION="0123456789abcdef0123456789abcdef01234567",
        ARGOCD_APP_SOURCE_REPO_URL="https://git.example.com/acme/deploy.git",
        ARGOCD_APP_SOURCE_PATH="apps/web",
        ARGOCD_APP_SOURCE_TARGET_REVISION="v1.0.0",
        KUBE_VERSION="1.35.0",
        KUBE_API_VERSIONS="v1,apps/v1,batch/v1",
    )
    env.update(extra)
    return env


def _gate(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_allow_prints_only_objects(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok, _, policy = world
    report = tmp_path / "r.json"
    p = _gate(["generate"], ok, _argo_env(policy, GATE_REPORT=str(report)))
    assert p.returncode == 0, p.stderr
    docs = [d for d in yaml.safe_load_all(p.stdout) if d is not None]
    assert docs and all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs)
    j = json.loads(report.read_text())
    assert j["source"]["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert j["source"]["repo"] == "https://git.example.com/acme/deploy.git"


def test_generate_deny_prints_nothing(world) -> None:  # type: ignore[no-untyped-def]
    _, bad, policy = world
    p = _gate(["generate"], bad, _argo_env(policy))
    assert p.returncode == 1
    assert p.stdout == ""
    assert "gitops-gate denied web" in p.stderr and "no-policy" in p.stderr


def test_generate_without_policy_is_exit_2(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ok, _, _ = world
    p = _gate(["generate"], ok, _argo_env(tmp_path / "absent.yaml"))
    assert p.returncode == 2 and p.stdout == ""
    assert "cannot read policy file" in p.stderr


def test_policy_check_describes_everything(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from tests.unit.policy.test_model import FULL

    doc = copy.deepcopy(FULL)
    doc["spec"]["output"]["publish"] = {"key": "/etc/gate/publish.key"}
    p = tmp_path / "full.yaml"
    p.write_text(yaml.safe_dump(doc))
    assert main(["policy", "check", str(p)]) == 0
    out = capsys.readouterr().out
    for words in (
        "mode: enforce",
        "gha-release: keyless issuer=https://token.actions.githubusercontent.com",
        "git: require tag, signed by 1 of [release-team, ops], release tags ['v*']",
        "provenance by 1 of [ops]",
        "attestation https://slsa.dev/provenance/v1 by 1 of [gha-release]",
        "EXEMPT (vendor image, reviewed 2026-11)",
        "signed verification summary (VSA) with key /etc/gate/vsa.key",
        "gate publish signs the Flux artifact with key /etc/gate/publish.key",
    ):
        assert words in out, (words, out)
