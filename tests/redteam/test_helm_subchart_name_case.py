"""Attack: a vendored subchart that helm names after a verified remote dependency.

helm reads ``Chart.yaml`` through sigs.k8s.io/yaml and Go's ``encoding/json``,
which matches keys case-insensitively: ``Name: demo`` names the chart ``demo``.
The chart verifier refuses such a ``Chart.yaml`` (no ``name``), but it reads
local subcharts only 8 levels deep, the stager 16. At depth 9 a local subchart
that declares ``demo`` (verified for the top-level chart) vendored
``charts/aaa/`` with ``Name: demo``; the stager read only ``name`` (none), so
it did not see that this is a copy of the remote dependency and left it next to
the verified archive it placed. helm keeps the first chart of that name (by
directory order, ``aaa`` before ``demo-0.1.0.tgz``) and rendered the vendored
one: the report said ``chart.provenance: verified`` for demo while unverified
templates were rendered in its place. Before the fix: exit 0, the vendored
ConfigMap in the manifests. Now: ``invalid-chart`` (a metadata key helm would
read under another spelling), nothing rendered.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from testkit.chartrepo import ChartRepoServer
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart
from testkit.pgp import PgpKey, PgpKeyFactory
from tests.integration.test_charts_support import pgp_entry, write_chart_source
from tests.unit.helpers import write_policy

pytestmark = pytest.mark.integration

IMAGE = "registry.example.com/acme/app"
EVIL = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendored-not-verified}\n"


@pytest.fixture(scope="module")
def signer(pgp_keys: PgpKeyFactory) -> PgpKey:
    return pgp_keys("Chart Signer")


@pytest.fixture(scope="module")
def demo(
    helm_tool: Helm, signer: PgpKey, tmp_path_factory: pytest.TempPathFactory
) -> PackagedChart:
    return build_signed_chart(helm_tool, tmp_path_factory.mktemp("demo"), signer, image=IMAGE)


@pytest.mark.parametrize(
    "chart_yaml",
    [
        "apiVersion: v2\nName: demo\nversion: 0.1.0\n",
        "apiVersion: v2\nNAME: demo\nVersion: 0.1.0\n",
    ],
)
def test_vendored_subchart_named_by_key_case_is_denied(
    tmp_path: Path,
    chart_repo: ChartRepoServer,
    demo: PackagedChart,
    signer: PgpKey,
    chart_yaml: str,
) -> None:
    chart_repo.add(demo)
    src = write_chart_source(
        tmp_path / "app", [{"name": "demo", "version": "0.1.0", "repository": chart_repo.url}]
    )
    deep = src
    for level in range(1, 10):  # charts/l1/charts/l2/.../charts/l9: beyond the verifier
        deep = deep / "charts" / f"l{level}"
        deep.mkdir(parents=True)
        (deep / "Chart.yaml").write_text(f"apiVersion: v2\nname: l{level}\nversion: 1.0.0\n")
    (deep / "Chart.yaml").write_text(
        "apiVersion: v2\nname: l9\nversion: 1.0.0\ndependencies:\n"
        f"- {{name: demo, version: 0.1.0, repository: '{chart_repo.url}'}}\n"
    )
    vendored = deep / "charts" / "aaa"
    (vendored / "templates").mkdir(parents=True)
    (vendored / "Chart.yaml").write_text(chart_yaml)
    (vendored / "templates" / "cm.yaml").write_text(EVIL)
    policy = write_policy(
        tmp_path / "policy.yaml",
        {
            "keys": {"charts": pgp_entry(signer)},
            "charts": [{"match": [f"{chart_repo.url}/**"], "provenance": {"signers": ["charts"]}}],
            "images": [{"match": [IMAGE], "exempt": "test image, not pulled"}],
            "registries": [{"host": f"127.0.0.1:{chart_repo.port}", "insecure": True}],
        },
    )
    report, out = tmp_path / "report.json", tmp_path / "out.yaml"
    code = main(
        ["verify", str(src), "--policy", str(policy), "--report", str(report),
         "--manifests", str(out)]
    )  # fmt: skip
    findings = json.loads(report.read_text())["findings"]
    assert code == 1, findings
    assert not out.exists()
    fails = [(f["check"], f["reason"]) for f in findings if f["outcome"] == "fail"]
    assert fails == [("render", "invalid-chart")], fails
