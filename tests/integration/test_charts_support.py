"""Shared pieces of the chart verification tests (no tests here).

The chart verifier is driven directly (``HelmChartVerifier.verify_charts``)
with a real engine ``Context``: the findings it records and the archives it
returns are what the engine and the Helm renderer get.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gate.charts import HelmChartVerifier
from gate.engine import Context, Findings, GateRequest, SourceInfo
from gate.render.base import VerifiedChart
from gate.report import Report
from testkit.pgp import PgpKey
from tests.unit.helpers import make_policy


@dataclass
class ChartRun:
    report: Report
    charts: Sequence[VerifiedChart]

    def failures(self, check_prefix: str = "chart") -> list[tuple[str, str]]:
        return [
            (f.check, f.reason)
            for f in self.report.findings
            if f.outcome == "fail" and f.check.startswith(check_prefix)
        ]

    def reasons(self) -> list[str]:
        return [reason for _, reason in self.failures()]

    def outcomes(self, check: str) -> list[tuple[str, str]]:
        return [(f.outcome, f.reason) for f in self.report.findings if f.check == check]

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


def pgp_entry(key: PgpKey) -> dict[str, str]:
    return {"pgp": key.public_armored().decode()}


def write_chart_source(
    directory: Path,
    dependencies: list[dict[str, Any]],
    *,
    lock: list[dict[str, Any]] | None = None,
    name: str = "app",
) -> Path:
    """A parent chart (apiVersion v2) declaring ``dependencies``; ``Chart.lock`` if ``lock``."""
    directory.mkdir(parents=True, exist_ok=True)
    chart = {
        "apiVersion": "v2",
        "name": name,
        "version": "1.0.0",
        "type": "application",
        "dependencies": dependencies,
    }
    (directory / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
    (directory / "values.yaml").write_text("{}\n")
    if lock is not None:
        doc = {
            "dependencies": lock,
            "digest": "sha256:" + "0" * 64,
            "generated": "2026-01-01T00:00:00Z",
        }
        (directory / "Chart.lock").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory


def run_charts(
    spec: dict[str, Any], source: Path, verifier: HelmChartVerifier | None = None
) -> ChartRun:
    policy = make_policy(spec)
    report = Report(
        policy_name=policy.name,
        policy_digest=policy.digest,
        source_path=str(source),
        revision=None,
        repo=None,
    )
    ctx = Context(
        policy, GateRequest(SourceInfo(source)), dt.datetime.now(dt.UTC), Findings(report)
    )
    charts = (verifier or HelmChartVerifier()).verify_charts(ctx)
    return ChartRun(report, charts)
