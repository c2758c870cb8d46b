"""The Argo CD packaging renders, is wired to `gate generate`, and ships a valid policy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gate.cli import main

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "plugins" / "argocd"


def test_plugin_yaml_runs_gate_generate() -> None:
    plugin = yaml.safe_load((ARGOCD / "plugin.yaml").read_text())
    assert plugin["apiVersion"] == "argoproj.io/v1alpha1"
    assert plugin["kind"] == "ConfigManagementPlugin"
    assert plugin["spec"]["generate"]["command"] == ["gate", "generate"]
    # Opt-in only: a discovery rule would route apps through the gate implicitly.
    assert "discover" not in plugin["spec"]
    app = yaml.safe_load((ARGOCD / "application-example.yaml").read_text())
    name = f"{plugin['metadata']['name']}-{plugin['spec']['version']}"
    assert app["spec"]["source"]["plugin"]["name"] == name


def test_example_policy_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(ARGOCD / "policy.yaml")]) == 0


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not on PATH (make test adds it)"
)
def test_overlay_renders_the_sidecar() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(ARGOCD)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out)}
    deploy = docs[("Deployment", "argocd-repo-server")]
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    gate = containers["gitops-gate"]
    assert gate["command"] == ["/var/run/argocd/argocd-cmp-server"]
    assert gate["securityContext"]["runAsUser"] == 999
    mounts = {m["mountPath"] for m in gate["volumeMounts"]}
    assert {
        "/home/argocd/cmp-server/plugins",
        "/home/argocd/cmp-server/config/plugin.yaml",
        "/etc/gate",
        "/var/run/argocd",
    } <= mounts
    # the patch adds the sidecar and keeps Argo CD's own container
    assert set(containers) == {"argocd-repo-server", "gitops-gate"}
    assert ("ConfigMap", "gitops-gate-policy") in docs
    assert ("ConfigMap", "gitops-gate-plugin") in docs
