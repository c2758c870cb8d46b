"""The demo's Git scenarios through the CLI: the signed release is allowed, the fakes denied."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from testkit.gitdemo import build_git_demo
from testkit.sshkeys import SshKey
from tests.unit.helpers import policy_doc

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("scenario", ["signed", "retagged", "unsigned"])
def test_demo_scenarios(tmp_path: Path, ssh_key: SshKey, scenario: str) -> None:
    demo = build_git_demo(tmp_path / "demo", key=ssh_key)
    spec: dict[str, Any] = {
        **demo.policy_spec(),
        "images": [{"match": ["registry.example.com/**"], "exempt": "demo image"}],
    }
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(spec)))
    report = tmp_path / "report.json"
    repo = getattr(demo, scenario)
    rc = main(["verify", str(demo.app(repo)), "--policy", str(policy), "--report", str(report)])
    decision, reason = demo.expected[scenario]
    doc = json.loads(report.read_text())
    assert doc["decision"] == decision
    assert rc == (0 if decision == "allow" else 1)
    if reason is not None:
        assert reason in {f["reason"] for f in doc["findings"] if f["outcome"] == "fail"}


def test_generate_binds_argocd_revision_and_target(
    tmp_path: Path,
    ssh_key: SshKey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = build_git_demo(tmp_path / "demo", key=ssh_key)
    spec: dict[str, Any] = {
        **demo.policy_spec(),
        "images": [{"match": ["registry.example.com/**"], "exempt": "demo image"}],
    }
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(policy_doc(spec)))
    monkeypatch.setenv("GATE_POLICY", str(policy))
    monkeypatch.chdir(demo.app(demo.signed))
    monkeypatch.setenv("ARGOCD_APP_REVISION", demo.signed.head())
    monkeypatch.setenv("ARGOCD_APP_SOURCE_TARGET_REVISION", "v1.0.0")
    assert main(["generate"]) == 0
    assert "kind: Deployment" in capsys.readouterr().out
    # Argo CD says it resolved another commit than the one on disk: deny, nothing on stdout.
    monkeypatch.setenv("ARGOCD_APP_REVISION", demo.signed.rev_parse("HEAD~1"))
    assert main(["generate"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "revision-not-head" in captured.err
