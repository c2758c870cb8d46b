"""OCI chart dependencies from the REAL registry (distribution 2.8.2).

Charts are packaged (and, for provenance, signed) by the real helm and pushed
as Helm does (``testkit.oci.push_helm_chart``: Helm config, chart layer,
optional provenance layer, tag = version with ``+`` → ``_``); cosign
signatures on the chart MANIFEST digest come from ``testkit.cosign``, in both
storage forms. Genuine charts are returned byte for byte; each forgery is
denied for its own reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gate.signing import KeyPair, generate_key_pair
from testkit import cosign, oci
from testkit.helmcharts import Helm, PackagedChart, build_signed_chart
from testkit.pgp import PgpKey, PgpKeyFactory
from testkit.registry import Registry
from testkit.sigstore_authority import Authority, GitHubClaims
from tests.integration.test_charts_support import (
    ChartRun,
    pgp_entry,
    run_charts,
    write_chart_source,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Material:
    signer: PgpKey
    ci: KeyPair
    other: KeyPair
    demo: PackagedChart  # demo 0.1.0 (+ .prov by signer)
    demo_build: PackagedChart  # demo 0.1.0+build.1 (tag 0.1.0_build.1)
    evil: PackagedChart  # evil 0.1.0


@pytest.fixture(scope="module")
def material(
    helm_tool: Helm, pgp_keys: PgpKeyFactory, tmp_path_factory: pytest.TempPathFactory
) -> Material:
    signer = pgp_keys("Chart Signer")

    def build(name: str = "demo", version: str = "0.1.0") -> PackagedChart:
        return build_signed_chart(helm_tool, tmp_path_factory.mktemp("c"), signer, name, version)

    return Material(
        signer,
        generate_key_pair(),
        generate_key_pair(),
        build(),
        build(version="0.1.0+build.1"),
        build("evil"),
    )


@dataclass
class World:
    registry: Registry
    m: Material
    tmp: Path
    prefix: str  # repository path under which charts are pushed

    @property
    def repository(self) -> str:
        return f"oci://{self.registry.host}/{self.prefix}"

    def push(
        self,
        chart: PackagedChart,
        *,
        name: str = "demo",
        version: str | None = None,
        prov: bool = False,
    ) -> oci.Descriptor:
        prov_bytes = chart.prov.read_bytes() if prov and chart.prov is not None else None
        return oci.push_helm_chart(
            self.registry,
            f"{self.prefix}/{name}",
            chart.tgz.read_bytes(),
            version,
            prov_bytes,
        )

    def sign(self, desc: oci.Descriptor, key: KeyPair, **kw: Any) -> None:
        cosign.sign_image_legacy(self.registry, f"{self.prefix}/demo", desc.digest, key=key, **kw)

    def spec(self, rule: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "keys": {
                "ci": {"publicKey": self.m.ci.public_pem().decode()},
                "charts": pgp_entry(self.m.signer),
            },
            "charts": [
                {
                    "match": [f"oci://{self.registry.host}/**"],
                    **(rule or {"signatures": {"signers": ["ci"]}}),
                }
            ],
            "registries": [{"host": self.registry.host, "insecure": True}],
        }

    def run(self, spec: dict[str, Any] | None = None, version: str = "0.1.0") -> ChartRun:
        src = write_chart_source(
            self.tmp / "src", [{"name": "demo", "version": version, "repository": self.repository}]
        )
        return run_charts(spec or self.spec(), src)


@pytest.fixture
def world(registry: Registry, material: Material, tmp_path: Path, repo_name: str) -> World:
    return World(registry, material, tmp_path, repo_name)


def assert_allowed(world: World, run: ChartRun, chart: PackagedChart, digest: str) -> None:
    assert run.failures() == [], run.report.findings
    assert run.exit_code == 0
    [got] = run.charts
    data = chart.tgz.read_bytes()
    assert (got.name, got.version, got.archive) == (chart.name, chart.version, data)
    assert got.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert got.source == f"oci://{world.registry.host}/{world.prefix}/demo@{digest}"


def assert_denied(run: ChartRun, check: str, reason: str) -> None:
    assert run.failures() == [(check, reason)], run.report.findings
    assert run.charts == ()
    assert run.exit_code == 1


# --- genuine ------------------------------------------------------------------------------------


def test_legacy_cosign_signature_on_the_chart_manifest(world: World) -> None:
    desc = world.push(world.m.demo)
    world.sign(desc, world.m.ci)
    run = world.run()
    assert_allowed(world, run, world.m.demo, desc.digest)
    assert run.outcomes("chart.signature") == [("pass", "verified")]
    assert len(run.report.inputs) == 1


def test_cosign_v3_bundle_on_the_chart_manifest(world: World) -> None:
    desc = world.push(world.m.demo)
    cosign.sign_image_bundle(world.registry, f"{world.prefix}/demo", desc, key=world.m.ci)
    assert_allowed(world, world.run(), world.m.demo, desc.digest)


def test_provenance_layer(world: World) -> None:
    desc = world.push(world.m.demo, prov=True)
    run = world.run(world.spec({"provenance": {"signers": ["charts"]}}))
    assert_allowed(world, run, world.m.demo, desc.digest)
    assert run.outcomes("chart.provenance") == [("pass", "verified")]


def test_provenance_and_signature_both_required(world: World) -> None:
    desc = world.push(world.m.demo, prov=True)
    world.sign(desc, world.m.ci)
    rule = {"provenance": {"signers": ["charts"]}, "signatures": {"signers": ["ci"]}}
    run = world.run(world.spec(rule))
    assert_allowed(world, run, world.m.demo, desc.digest)
    assert len(run.report.inputs) == 2


def test_version_with_build_metadata_uses_the_underscore_tag(world: World) -> None:
    desc = world.push(world.m.demo_build)
    world.sign(desc, world.m.ci)
    assert_allowed(world, world.run(version="0.1.0+build.1"), world.m.demo_build, desc.digest)


# --- forgeries ----------------------------------------------------------------------------------


def test_chart_without_signature(world: World) -> None:
    world.push(world.m.demo)
    assert_denied(world.run(), "chart.signature", "unsigned")


def test_chart_signed_by_another_key(world: World) -> None:
    desc = world.push(world.m.demo)
    world.sign(desc, world.m.other)
    assert_denied(world.run(), "chart.signature", "untrusted-signer")


def test_signature_for_another_digest(world: World) -> None:
    desc = world.push(world.m.demo)
    other = world.push(world.m.demo_build)
    world.sign(desc, world.m.ci, forgery=cosign.Forgery(signed_digest=other.digest))
    assert_denied(world.run(), "chart.signature", "digest-mismatch")


def test_provenance_required_but_no_provenance_layer(world: World) -> None:
    world.push(world.m.demo)
    run = world.run(world.spec({"provenance": {"signers": ["charts"]}}))
    assert_denied(run, "chart.provenance", "unsigned")


def test_signed_chart_of_another_name_pushed_under_this_name(world: World) -> None:
    # The whole genuine, signed "evil" chart under demo's repository and tag.
    desc = world.push(world.m.evil, version="0.1.0")
    world.sign(desc, world.m.ci)
    assert_denied(world.run(), "chart.policy", "chart-mismatch")  # the Helm config says evil


def test_chart_pushed_under_another_version_tag(world: World) -> None:
    desc = world.push(world.m.demo, version="0.2.0")
    world.sign(desc, world.m.ci)
    assert_denied(world.run(version="0.2.0"), "chart.policy", "chart-mismatch")


def test_missing_chart(world: World) -> None:
    assert_denied(world.run(), "chart.policy", "chart-not-found")


def test_keyless_signature_on_the_chart_manifest(
    world: World, sigstore_authority: Authority
) -> None:
    claims = GitHubClaims.for_workflow()
    desc = world.push(world.m.demo)
    keyless = cosign.Keyless(sigstore_authority, claims.identity, cosign.GITHUB_ACTIONS_ISSUER)
    cosign.sign_image_legacy(world.registry, f"{world.prefix}/demo", desc.digest, keyless=keyless)
    spec = world.spec({"signatures": {"signers": ["release"]}})
    spec["keys"]["release"] = {
        "keyless": {"issuer": cosign.GITHUB_ACTIONS_ISSUER, "subject": claims.identity}
    }
    spec["trustRoots"] = {"sigstore": str(sigstore_authority.trusted_root_path)}
    assert_allowed(world, world.run(spec), world.m.demo, desc.digest)
    spec["keys"]["release"]["keyless"]["subject"] = "https://github.com/other/**"
    assert_denied(world.run(spec), "chart.signature", "identity-mismatch")
