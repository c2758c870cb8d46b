"""Attack: audit mode turns an extraction failure into "allow" with NO manifests.

In audit mode every verification failure becomes a warning. A manifest whose
``image`` cannot be read (``image: 42``) stops the run before any output exists,
yet the decision was ``allow`` and the exit code 0: ``gate generate`` printed
nothing to stdout and exited 0, which Argo CD reads as "this application has no
resources" (with auto-sync and prune: delete everything), and ``gate verify``
reported ALLOW without writing ``--manifests``. An allow must always come with
manifests; a run that produced none is a deny.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gate.cli import main
from tests.redteam._world import write_docs
from tests.unit.helpers import write_policy

AUDIT = {
    "mode": "audit",
    "images": [{"match": ["registry.example.com/**"], "exempt": "vendor image"}],
}


def _source(tmp: Path) -> Path:
    return write_docs(
        tmp / "src",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "b"}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "app"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": 42}]}}},
        },
    )


def test_verify_audit_without_manifests_is_not_an_allow(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", AUDIT)
    report = tmp_path / "r.json"
    out = tmp_path / "out.yaml"
    code = main(
        ["verify", str(_source(tmp_path)), "--policy", str(policy), "--report", str(report),
         "--manifests", str(out)]
    )  # fmt: skip
    doc = json.loads(report.read_text())
    assert code == 1, doc["findings"]
    assert doc["decision"] == "deny"
    assert not out.exists()
    failed = [(f["check"], f["reason"]) for f in doc["findings"] if f["outcome"] == "fail"]
    assert failed == [("engine", "no-manifests")]


def test_generate_audit_without_manifests_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path / "p.yaml", AUDIT)
    src = _source(tmp_path)
    monkeypatch.setenv("GATE_POLICY", str(policy))
    for name in [n for n in os.environ if n.startswith("ARGOCD_")]:
        monkeypatch.delenv(name)
    code = main(["generate", str(src)])
    out = capsys.readouterr()
    assert code == 1, out.err
    assert out.out == ""
    assert "no-manifests" in out.err
