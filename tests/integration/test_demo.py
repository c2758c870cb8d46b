"""`make demo` runs in CI too: every scenario must end as the demo expects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_outcomes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith(("GATE_", "DOCKER_", "ARGOCD_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "testkit.demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "every outcome as expected" in proc.stderr
    for reason in (
        "[unsigned]",
        "[tag-name-mismatch]",
        "[no-policy]",
        "[untrusted-signer]",
        "[builder-mismatch]",
    ):
        assert reason in proc.stderr
    pinned = (tmp_path / "demo-out" / "scenario-2.yaml").read_text()
    assert pinned.count("@sha256:") == 3  # web, api, migrate; busybox is exempt
    # the Helm chart's dependency renders from the verified archive, pinned
    chart = (tmp_path / "demo-out" / "scenario-6.yaml").read_text()
    assert "shop/web:1.0@sha256:" in chart
    # a deny leaves no manifests behind
    assert not (tmp_path / "demo-out" / "scenario-3.yaml").exists()
