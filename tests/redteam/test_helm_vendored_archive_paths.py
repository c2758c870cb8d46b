"""Attack: a vendored chart archive hides the remote dependency it declares inside.

A vendored archive that declares a remote dependency anywhere inside is refused
(``chart-unverified``: nobody verified the copy it carries). The inspection read the
archive with the names as written, helm reads them ``path.Clean``ed and merges a
repeated ``Chart.yaml``. Both hid the declaration and ``gate verify`` rendered the
vendored copy of ``redis`` (real helm: ``top/charts/wrapper/.../charts/redis``):

* ``wrapper/charts/inner/./Chart.yaml`` (helm: ``charts/inner/Chart.yaml``),
  declaring ``redis`` from https;
* ``wrapper/Chart.yaml`` twice: first with the dependency, then without (helm
  keeps the first copy's dependencies, the inspection saw only the last).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from gate.cli import main
from tests.unit.helpers import write_policy

pytestmark = pytest.mark.integration

DEP = (
    b"apiVersion: v2\nname: {name}\nversion: 1.0.0\ndependencies:\n"
    b"- {name: redis, version: 1.0.0, repository: 'https://charts.example.com'}\n"
)
PLAIN = b"apiVersion: v2\nname: wrapper\nversion: 1.0.0\n"
CM = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendored-redis}\n"


def _tgz(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


REDIS = _tgz(
    [
        ("redis/Chart.yaml", b"apiVersion: v2\nname: redis\nversion: 1.0.0\n"),
        ("redis/templates/cm.yaml", CM),
    ]
)
WRAPPERS = {
    "dot-segment": [
        ("wrapper/Chart.yaml", PLAIN),
        ("wrapper/charts/inner/./Chart.yaml", DEP.replace(b"{name}", b"inner")),
        ("wrapper/charts/inner/charts/redis-1.0.0.tgz", REDIS),
    ],
    "repeated-chart-yaml": [
        ("wrapper/Chart.yaml", DEP.replace(b"{name}", b"wrapper")),
        ("wrapper/Chart.yaml", PLAIN),
        ("wrapper/charts/redis-1.0.0.tgz", REDIS),
    ],
}


@pytest.mark.parametrize("variant", sorted(WRAPPERS))
def test_vendored_archive_hiding_a_remote_dependency_is_denied(
    tmp_path: Path, variant: str
) -> None:
    src = tmp_path / "top"
    (src / "charts").mkdir(parents=True)
    (src / "Chart.yaml").write_text("apiVersion: v2\nname: top\nversion: 1.0.0\n")
    (src / "charts" / "wrapper-1.0.0.tgz").write_bytes(_tgz(WRAPPERS[variant]))
    policy = write_policy(tmp_path / "policy.yaml", {"images": []})
    report, out = tmp_path / "report.json", tmp_path / "out.yaml"
    code = main(
        ["verify", str(src), "--policy", str(policy), "--report", str(report),
         "--manifests", str(out)]
    )  # fmt: skip
    findings = json.loads(report.read_text())["findings"]
    assert code == 1, findings
    assert not out.exists()
    fails = [(f["check"], f["reason"]) for f in findings if f["outcome"] == "fail"]
    expected = "chart-unverified" if variant == "dot-segment" else "chart-unreadable"
    assert fails == [("render", expected)], fails
