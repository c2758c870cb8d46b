"""Chart dependencies from a REAL HTTP chart repository (testkit.chartrepo), signed by helm.

Every chart is packaged and signed by the real helm 4.1.4 (``.prov`` armor
without CRC24, no final newline), indexed by ``helm repo index`` and served
over loopback; the policy marks that host ``insecure`` (plain http). The
genuine dependency is returned byte for byte; each forgery is denied for its
own reason; a repository that never answers is "could not decide" (exit 3).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gate.charts import HelmChartVerifier
from testkit.chartrepo import ChartRepoServer
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart, tamper
from testkit.pgp import PgpKey, PgpKeyFactory
from tests.integration.test_charts_support import (
    ChartRun,
    pgp_entry,
    run_charts,
    write_chart_source,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Charts:
    signer: PgpKey
    other: PgpKey
    demo: PackagedChart  # demo 0.1.0 signed by signer
    demo2: PackagedChart  # demo 0.2.0 signed by signer
    evil: PackagedChart  # evil 0.1.0 signed by signer
    by_other: PackagedChart  # demo 0.1.0 signed by other
    by_expired: PackagedChart  # demo 0.1.0 signed by an expired key
    by_revoked: PackagedChart  # demo 0.1.0 signed by a revoked key
    unsigned: PackagedChart  # demo 0.1.0 without .prov
    expired: PgpKey
    revoked: PgpKey


@pytest.fixture(scope="module")
def charts(
    helm_tool: Helm, pgp_keys: PgpKeyFactory, tmp_path_factory: pytest.TempPathFactory
) -> Charts:
    signer = pgp_keys("Chart Signer")
    other = pgp_keys("Other Signer")
    expired = pgp_keys("Expired Chart Signer", expired=True)
    revoked = pgp_keys("Revoked Chart Signer", revoked=True)

    def build(key: PgpKey | None, name: str = "demo", version: str = "0.1.0") -> PackagedChart:
        return build_signed_chart(helm_tool, tmp_path_factory.mktemp("c"), key, name, version)

    return Charts(
        signer,
        other,
        build(signer),
        build(signer, version="0.2.0"),
        build(signer, "evil"),
        build(other),
        build(expired),
        build(revoked),
        build(None),
        expired,
        revoked,
    )


@dataclass
class World:
    repo: ChartRepoServer
    charts: Charts
    tmp: Path

    def spec(self, rule: dict[str, Any] | None = None, **keys: PgpKey) -> dict[str, Any]:
        all_keys = {"charts": self.charts.signer, **keys}
        checks = rule or {"provenance": {"signers": ["charts"]}}
        return {
            "keys": {name: pgp_entry(key) for name, key in all_keys.items()},
            "charts": [{"match": [f"{self.repo.url}/**"], **checks}],
            "registries": [{"host": f"127.0.0.1:{self.repo.port}", "insecure": True}],
        }

    def source(
        self, version: str = "0.1.0", *, lock: list[dict[str, Any]] | None = None, **dep: Any
    ) -> Path:
        entry = {"name": "demo", "version": version, "repository": self.repo.url, **dep}
        return write_chart_source(self.tmp / "src", [entry], lock=lock)

    def run(self, spec: dict[str, Any] | None = None, source: Path | None = None) -> ChartRun:
        return run_charts(spec or self.spec(), source or self.source())


@pytest.fixture
def world(chart_repo: ChartRepoServer, charts: Charts, tmp_path: Path) -> World:
    return World(chart_repo, charts, tmp_path)


def assert_denied(run: ChartRun, check: str, reason: str) -> None:
    assert run.failures() == [(check, reason)], run.report.findings
    assert run.charts == ()
    assert run.exit_code == 1


def publish_as(world: World, chart: PackagedChart, as_chart: PackagedChart) -> None:
    """Serve ``chart``'s archive and .prov under ``as_chart``'s file names, indexed."""
    world.repo.put_file(as_chart.filename, chart.tgz.read_bytes())
    if chart.prov is not None:
        world.repo.put_file(as_chart.filename + ".prov", chart.prov.read_bytes())
    world.repo.reindex()


# --- genuine ------------------------------------------------------------------------------------


def test_genuine_dependency_is_returned_byte_for_byte(world: World) -> None:
    world.repo.add(world.charts.demo)
    run = world.run()
    assert run.failures() == [], run.report.findings
    assert run.exit_code == 0
    [chart] = run.charts
    data = world.charts.demo.tgz.read_bytes()
    assert (chart.name, chart.version, chart.archive) == ("demo", "0.1.0", data)
    assert chart.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert chart.source == world.repo.chart_url(world.charts.demo)
    assert run.outcomes("chart.provenance") == [("pass", "verified")]
    prov = world.charts.demo.prov
    assert prov is not None
    assert [(i.uri, i.digest) for i in run.report.inputs] == [
        (chart.source + ".prov", "sha256:" + hashlib.sha256(prov.read_bytes()).hexdigest())
    ]
    assert "/index.yaml" in world.repo.requests
    assert f"/{world.charts.demo.filename}.prov" in world.repo.requests


def test_lock_pins_the_version_and_the_archive_digest(world: World) -> None:
    world.repo.add(world.charts.demo)
    world.repo.add(world.charts.demo2)
    digest = "sha256:" + world.charts.demo.sha256
    lock = [{"name": "demo", "version": "0.1.0", "repository": world.repo.url, "digest": digest}]
    run = world.run(source=world.source("^0.1.0", lock=lock))
    assert run.failures() == [], run.report.findings
    assert [(c.version, c.digest) for c in run.charts] == [("0.1.0", digest)]


def test_exempt_chart_is_fetched_reported_and_returned(world: World) -> None:
    world.repo.add(world.charts.unsigned)
    run = world.run(world.spec({"exempt": "vendor chart, reviewed"}))
    assert run.failures() == []
    assert run.outcomes("chart.policy") == [("exempt", "exempt")]
    assert world.charts.unsigned.sha256 in run.report.findings[0].detail
    assert [c.archive for c in run.charts] == [world.charts.unsigned.tgz.read_bytes()]
    assert not any(r.endswith(".prov") for r in world.repo.requests)


def test_local_dependency_is_part_of_the_source(world: World) -> None:
    src = write_chart_source(
        world.tmp / "src", [{"name": "sub", "version": "0.1.0", "repository": "file://charts/sub"}]
    )
    run = world.run(source=src)
    assert run.failures() == []
    assert run.outcomes("chart.policy") == [("pass", "in-source")]
    assert run.charts == ()
    assert world.repo.requests == []


# --- forgeries, each for its own reason ------------------------------------------------------


def test_unsigned_chart(world: World) -> None:
    world.repo.add(world.charts.unsigned)
    assert_denied(world.run(), "chart.provenance", "unsigned")


def test_chart_signed_by_another_key(world: World) -> None:
    world.repo.add(world.charts.by_other)
    assert_denied(world.run(), "chart.provenance", "untrusted-signer")


def test_chart_signed_by_an_expired_key(world: World) -> None:
    world.repo.add(world.charts.by_expired)
    run = world.run(world.spec({"provenance": {"signers": ["old"]}}, old=world.charts.expired))
    assert_denied(run, "chart.provenance", "key-expired")


def test_chart_signed_by_a_revoked_key(world: World) -> None:
    world.repo.add(world.charts.by_revoked)
    run = world.run(world.spec({"provenance": {"signers": ["gone"]}}, gone=world.charts.revoked))
    assert_denied(run, "chart.provenance", "key-revoked")


def test_tampered_archive_not_reindexed(world: World) -> None:
    world.repo.add(world.charts.demo)
    tampered = tamper(world.charts.demo.tgz, dest=world.tmp / "t.tgz").read_bytes()
    world.repo.put_file(world.charts.demo.filename, tampered)
    assert_denied(world.run(), "chart.policy", "digest-mismatch")  # index.yaml's digest


def test_tampered_archive_reindexed_fails_on_the_signed_hash(world: World) -> None:
    world.repo.add(world.charts.demo)
    tampered = tamper(world.charts.demo.tgz, dest=world.tmp / "t.tgz").read_bytes()
    world.repo.put_file(world.charts.demo.filename, tampered)
    world.repo.reindex()
    run = world.run()
    assert_denied(run, "chart.provenance", "digest-mismatch")
    assert "provenance signs" in run.report.findings[0].detail


def test_provenance_of_another_version(world: World) -> None:
    world.repo.add(world.charts.demo)
    prov = world.charts.demo2.prov
    assert prov is not None
    world.repo.put_file(world.charts.demo.filename + ".prov", prov.read_bytes())
    assert_denied(world.run(), "chart.provenance", "chart-mismatch")


def test_provenance_of_another_chart_name(world: World) -> None:
    world.repo.add(world.charts.demo)
    prov = world.charts.evil.prov
    assert prov is not None
    world.repo.put_file(world.charts.demo.filename + ".prov", prov.read_bytes())
    assert_denied(world.run(), "chart.provenance", "chart-mismatch")


def test_another_signed_chart_served_under_this_name(world: World) -> None:
    # helm repo index reads the archive's own Chart.yaml, so the index says "evil".
    publish_as(world, world.charts.evil, world.charts.demo)
    assert_denied(world.run(), "chart.policy", "chart-not-found")


def test_index_pointing_at_another_signed_chart(world: World) -> None:
    world.repo.add(world.charts.demo)
    world.repo.add(world.charts.evil)
    index = yaml.safe_load(world.repo.index_yaml())
    [evil] = index["entries"]["evil"]
    [demo] = index["entries"]["demo"]
    demo["urls"], demo["digest"] = evil["urls"], evil["digest"]
    world.repo.put_file("index.yaml", yaml.safe_dump(index).encode())
    run = world.run()
    assert_denied(run, "chart.provenance", "chart-mismatch")
    assert f"/{world.charts.evil.filename}" in world.repo.requests


def test_lock_digest_mismatch(world: World) -> None:
    world.repo.add(world.charts.demo)
    lock = [
        {
            "name": "demo",
            "version": "0.1.0",
            "repository": world.repo.url,
            "digest": "sha256:" + world.charts.demo2.sha256,
        }
    ]
    assert_denied(world.run(source=world.source(lock=lock)), "chart.lock", "digest-mismatch")


def test_lock_that_does_not_list_the_dependency(world: World) -> None:
    world.repo.add(world.charts.demo)
    lock = [{"name": "other", "version": "0.1.0", "repository": world.repo.url}]
    assert_denied(world.run(source=world.source(lock=lock)), "chart.lock", "lock-mismatch")


def test_version_range_without_lock(world: World) -> None:
    world.repo.add(world.charts.demo)
    assert_denied(world.run(source=world.source("^0.1.0")), "chart.policy", "version-not-pinned")


def test_version_not_in_the_index(world: World) -> None:
    world.repo.add(world.charts.demo)
    assert_denied(world.run(source=world.source("9.9.9")), "chart.policy", "chart-not-found")


def test_no_rule_matches(world: World) -> None:
    world.repo.add(world.charts.demo)
    spec = world.spec()
    spec["charts"][0]["match"] = ["https://charts.example.com/**"]
    assert_denied(world.run(spec), "chart.policy", "no-policy")
    assert world.repo.requests == []


def test_plain_http_needs_the_host_marked_insecure(world: World) -> None:
    world.repo.add(world.charts.demo)
    spec = world.spec()
    del spec["registries"]
    assert_denied(world.run(spec), "chart.policy", "insecure-repository")
    assert world.repo.requests == []


def test_cosign_signatures_cannot_come_from_an_http_repository(world: World) -> None:
    world.repo.add(world.charts.demo)
    spec = world.spec({"signatures": {"signers": ["charts"]}})
    assert_denied(world.run(spec), "chart.signature", "unsigned")


@pytest.mark.parametrize(
    "repository",
    [
        "@stable",
        "stable",
        "alias:stable",
        "{url}/a/../b",
        "{url}/./b",
        "{url}/%2e%2e/b",
        "{url}/b?x=1",
        "{url}/b#x",
        "http://user:pw@127.0.0.1/b",
        "ftp://127.0.0.1/b",
    ],
)
def test_unresolvable_repository(world: World, repository: str) -> None:
    repo = repository.format(url=world.repo.url)
    src = write_chart_source(
        world.tmp / "src", [{"name": "demo", "version": "0.1.0", "repository": repo}]
    )
    assert_denied(world.run(source=src), "chart.policy", "unresolvable-repository")
    assert world.repo.requests == []


# --- a repository that does not answer ----------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections on a free loopback port and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in held:
            conn.close()
        sock.close()


def test_repository_that_times_out_is_undecided(world: World, silent_server: str) -> None:
    url = f"http://{silent_server}"
    spec = world.spec()
    spec["charts"][0]["match"] = [f"{url}/**"]
    spec["registries"] = [{"host": silent_server, "insecure": True}]
    src = write_chart_source(
        world.tmp / "src", [{"name": "demo", "version": "0.1.0", "repository": url}]
    )
    run = run_charts(spec, src, HelmChartVerifier(deadline_s=1.0))
    assert [r for _, r in run.failures()] == ["registry-unreachable"], run.report.findings
    assert run.exit_code == 3
    assert run.charts == ()


def test_v1_requirements_yaml_and_lock(world: World) -> None:
    world.repo.add(world.charts.demo)
    src = world.tmp / "v1"
    src.mkdir()
    (src / "Chart.yaml").write_text("apiVersion: v1\nname: app\nversion: 1.0.0\n")
    dep = {"name": "demo", "version": "~0.1", "repository": world.repo.url}
    (src / "requirements.yaml").write_text(yaml.safe_dump({"dependencies": [dep]}))
    lock = {"dependencies": [{**dep, "version": "0.1.0"}], "digest": "sha256:" + "0" * 64}
    (src / "requirements.lock").write_text(yaml.safe_dump(lock))
    run = world.run(source=src)
    assert run.failures() == [], run.report.findings
    assert [(c.name, c.version) for c in run.charts] == [("demo", "0.1.0")]


def test_remote_dependency_of_a_local_subchart(world: World) -> None:
    world.repo.add(world.charts.demo)
    src = write_chart_source(world.tmp / "src", [{"name": "sub", "version": "0.1.0"}])
    write_chart_source(
        src / "charts" / "sub",
        [{"name": "demo", "version": "0.1.0", "repository": world.repo.url}],
        name="sub",
    )
    run = world.run(source=src)
    assert run.failures() == [], run.report.findings
    assert [(c.name, c.version) for c in run.charts] == [("demo", "0.1.0")]
    assert ("pass", "in-source") in run.outcomes("chart.policy")


def test_redirect_to_a_plain_http_host_not_marked_insecure(world: World) -> None:
    # A transport stand-in: the insecure host redirects index.yaml to another plain-http host.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "charts.test":
            return httpx.Response(302, headers={"Location": "http://elsewhere.test/index.yaml"})
        return httpx.Response(200, content=b"apiVersion: v1\nentries: {}\n")

    spec = world.spec()
    spec["charts"][0]["match"] = ["http://charts.test/**"]
    spec["registries"] = [{"host": "charts.test", "insecure": True}]
    src = write_chart_source(
        world.tmp / "src",
        [{"name": "demo", "version": "0.1.0", "repository": "http://charts.test"}],
    )
    verifier = HelmChartVerifier(transport=httpx.MockTransport(handler))
    run = run_charts(spec, src, verifier)
    assert run.failures() == [("chart.policy", "insecure-repository")], run.report.findings
