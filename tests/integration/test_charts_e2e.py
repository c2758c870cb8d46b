"""``gate verify`` on a chart whose dependency comes from a real HTTP chart repository.

The whole path: the chart verifier fetches and verifies the dependency's
``.prov`` (signed by the real helm), the Helm renderer renders exactly that
archive, the images are decided, and the manifests come out. A forged
dependency stops the run before rendering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from testkit.chartrepo import ChartRepoServer
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart
from testkit.pgp import PgpKey, PgpKeyFactory
from tests.integration.test_charts_support import pgp_entry, write_chart_source
from tests.unit.helpers import write_policy

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/acme/app"


@pytest.fixture(scope="module")
def signer(pgp_keys: PgpKeyFactory) -> PgpKey:
    return pgp_keys("Chart Signer")


@pytest.fixture(scope="module")
def demo(
    helm_tool: Helm, signer: PgpKey, tmp_path_factory: pytest.TempPathFactory
) -> PackagedChart:
    return build_signed_chart(helm_tool, tmp_path_factory.mktemp("demo"), signer, image=IMAGE)


def verify(tmp: Path, repo: ChartRepoServer, signer: PgpKey) -> tuple[int, dict[str, Any], Path]:
    src = write_chart_source(
        tmp / "app", [{"name": "demo", "version": "0.1.0", "repository": repo.url}]
    )
    spec = {
        "keys": {"charts": pgp_entry(signer)},
        "charts": [{"match": [f"{repo.url}/**"], "provenance": {"signers": ["charts"]}}],
        "images": [{"match": [f"{IMAGE}"], "exempt": "test image, not pulled"}],
        "registries": [{"host": f"127.0.0.1:{repo.port}", "insecure": True}],
    }
    policy = write_policy(tmp / "policy.yaml", spec)
    report, out = tmp / "report.json", tmp / "out.yaml"
    code = main(
        ["verify", str(src), "--policy", str(policy), "--report", str(report),
         "--manifests", str(out)]
    )  # fmt: skip
    return code, json.loads(report.read_text()), out


def test_chart_with_a_verified_dependency_renders(
    tmp_path: Path, chart_repo: ChartRepoServer, demo: PackagedChart, signer: PgpKey
) -> None:
    chart_repo.add(demo)
    code, report, out = verify(tmp_path, chart_repo, signer)
    assert code == 0, report["findings"]
    checks = {(f["check"], f["outcome"]) for f in report["findings"]}
    assert ("chart.provenance", "pass") in checks
    assert ("render", "pass") in checks
    docs = list(yaml.safe_load_all(out.read_text()))
    [deployment] = [d for d in docs if d and d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "release-demo"
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{IMAGE}:1.0.0"


def test_forged_dependency_stops_before_rendering(
    tmp_path: Path, chart_repo: ChartRepoServer, demo: PackagedChart, signer: PgpKey
) -> None:
    chart_repo.add(demo, with_prov=False)
    code, report, out = verify(tmp_path, chart_repo, signer)
    assert code == 1
    assert not out.exists()
    fails = [(f["check"], f["reason"]) for f in report["findings"] if f["outcome"] == "fail"]
    assert fails == [("chart.provenance", "unsigned")]
    assert not any(f["check"] == "render" for f in report["findings"])
