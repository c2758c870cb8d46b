"""``make demo``: build a signed demo world with the test authority and run the gate on it.

The world: a real OCI registry on a loopback port, a cosign key pair and a
private Sigstore (keyless, GitHub Actions identity), images signed both ways
(with SLSA provenance, one from the wrong builder) and one left unsigned, a
Helm chart repository with PGP-signed charts, and Git repositories whose
release tags are SSH-signed.
Then ``gate verify`` runs on several sources, as a release pipeline would, and
the demo checks that each outcome is the one expected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from gate.signing import generate_key_pair
from testkit import attestations as att
from testkit import oci
from testkit.chartrepo import ChartRepoServer
from testkit.cosign import Keyless, attest_image_bundle, sign_image_bundle, sign_image_legacy
from testkit.gitrepo import GitRepo, SshSigner
from testkit.helmcharts import Helm, build_signed_chart
from testkit.pgp import generate_key
from testkit.registry import Registry, running_registry
from testkit.sigstore_authority import Authority, GitHubClaims
from testkit.sshkeys import SshKey, generate_ssh_key

OUT = Path("demo-out")
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stderr.isatty() else ("", "", "")


@dataclass(frozen=True)
class Scenario:
    title: str
    source: Path
    expect_exit: int
    expect_reason: str | None  # the reason code the deny must carry


@dataclass(frozen=True)
class World:
    registry: Registry
    policy: Path
    images: dict[str, str]  # name -> reference by tag
    scenarios: list[Scenario]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def kustomization(*images: str) -> dict[str, bytes]:
    """An app directory: a Deployment (with an init container) and a kustomization."""
    containers = [{"name": f"c{i}", "image": im} for i, im in enumerate(images[1:])]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": images[0]}],
                    "containers": containers,
                },
            },
        },
    }
    kust = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": "shop",
        "resources": ["deployment.yaml"],
    }
    return {
        "deploy/deployment.yaml": yaml.safe_dump(deployment, sort_keys=False).encode(),
        "deploy/kustomization.yaml": yaml.safe_dump(kust, sort_keys=False).encode(),
    }


def release(path: Path, signer: SshSigner | None, files: dict[str, bytes], tag: str) -> GitRepo:
    repo = GitRepo.init(path)
    repo.commit({"README.md": b"# shop\n"}, "initial commit", sign=signer)
    repo.commit(files, f"release {tag}", sign=signer)
    repo.tag(tag, sign=signer)
    return repo


def chart_source(dependency_version: str, repository: str) -> dict[str, bytes]:
    """An app that is a Helm chart with one remote dependency (its Deployment)."""
    chart = {
        "apiVersion": "v2",
        "name": "shop-chart",
        "version": "1.0.0",
        "dependencies": [
            {"name": "cache", "version": dependency_version, "repository": repository}
        ],
    }
    return {
        "chart/Chart.yaml": yaml.safe_dump(chart, sort_keys=False).encode(),
        "chart/values.yaml": b"cache:\n  replicaCount: 2\n",
    }


def publish_charts(root: Path, host: str, stack: ExitStack) -> tuple[str, str]:
    """A chart repository with ``cache`` 0.1.0 signed by the charts team and
    0.2.0 signed by a key nobody trusts; returns (repository URL, team public key)."""
    helm = Helm()
    stack.callback(helm.cleanup)
    team = generate_key("Charts Team", "charts@example.test")
    stack.callback(team.cleanup)
    mallory = generate_key("Mallory", "mallory@example.test")
    stack.callback(mallory.cleanup)
    repo = ChartRepoServer(helm, root / "chart-repo").start()
    stack.callback(repo.stop)
    for version, key in (("0.1.0", team), ("0.2.0", mallory)):
        chart = build_signed_chart(
            helm,
            root / f"chart-{version}",
            key,
            "cache",
            version,
            image=f"{host}/shop/web",
            tag="1.0",
        )
        repo.add(chart)
    say(f"   chart repository {repo.url}: cache 0.1.0 signed by {team.uid}, 0.2.0 by {mallory.uid}")
    return repo.url, team.public_armored().decode()


def build_world(root: Path, registry: Registry, stack: ExitStack) -> World:
    say(f"{BOLD}1. building the signed demo world{RESET} in {root}")
    host = registry.host

    # Images: two signed (a cosign key, legacy .sig; keyless, cosign v3 bundle), one not.
    ci = generate_key_pair()
    authority = Authority.create(root / "sigstore")
    # One release run of acme/shop: the OIDC claims in the certificate and the
    # provenance the workflow writes describe the same run (the gate cross-checks them).
    release_build = att.GitHubBuild(repository="acme/shop", ref="refs/tags/v1.0.0")
    claims = GitHubClaims.for_workflow(
        "acme/shop", release_build.workflow_path, release_build.ref, sha=release_build.commit
    )
    images: dict[str, str] = {}
    for name, seed in (("web", 1), ("api", 2), ("migrate", 3), ("unsigned", 4), ("worker", 5)):
        desc = oci.push_image(registry, f"shop/{name}", "1.0", seed=seed)
        images[name] = f"{host}/shop/{name}:1.0"
        if name in ("web", "migrate"):
            sign_image_legacy(registry, f"shop/{name}", desc.digest, key=ci)
            how = "signed with the ci cosign key (legacy .sig)"
        elif name in ("api", "worker"):
            keyless = Keyless.github_workflow(authority, claims)
            sign_image_bundle(registry, f"shop/{name}", desc, keyless=keyless)
            # SLSA provenance, attested by the release workflow. The worker's
            # provenance names another builder: signed, but not built by the
            # trusted release workflow.
            build = release_build
            if name == "worker":
                build = replace(
                    release_build,
                    builder_id="https://github.com/evil/ci/.github/workflows/build.yml@v1",
                )
            statement = att.provenance_statement(
                [att.subject(f"{host}/shop/{name}", desc.digest)], build
            )
            attest_image_bundle(
                registry, f"shop/{name}", desc, att.SLSA_PROVENANCE_V1,
                statement=statement, keyless=keyless,
            )  # fmt: skip
            builder = build.builder_id or "the release workflow"
            how = f"signed keyless (cosign v3 bundle) by {claims.identity}; provenance: {builder}"
        else:
            how = "NOT signed"
        say(f"   image {images[name]}@{desc.digest[:19]}…  {how}")

    # Git: release tags signed by the release team's SSH key.
    (root / "keys").mkdir()
    key: SshKey = generate_ssh_key(root / "keys", "release-team")
    signer = SshSigner(key)
    good = kustomization(images["migrate"], images["web"], images["api"], "busybox:1.36")
    bad = kustomization(images["migrate"], images["web"], images["unsigned"])
    r_good = release(root / "repos/shop-good", signer, good, "v1.0.0")
    r_unsigned_img = release(root / "repos/shop-unsigned-image", signer, bad, "v1.1.0")
    r_retag = release(root / "repos/shop-retagged", signer, good, "v1.0.0")
    r_retag.retag("v1.0.0", "v2.0.0")
    r_retag.git("tag", "-d", "v1.0.0")
    r_nopolicy = release(
        root / "repos/shop-unknown-image",
        signer,
        kustomization(images["migrate"], images["web"], "docker.io/acme/cryptominer:latest"),
        "v1.2.0",
    )
    r_builder = release(
        root / "repos/shop-wrong-builder",
        signer,
        kustomization(images["migrate"], images["web"], images["worker"]),
        "v1.3.0",
    )
    chart_repo, charts_key = publish_charts(root, host, stack)
    r_chart = release(
        root / "repos/shop-chart", signer, chart_source("0.1.0", chart_repo), "v3.0.0"
    )
    r_chart_bad = release(
        root / "repos/shop-chart-untrusted", signer, chart_source("0.2.0", chart_repo), "v3.1.0"
    )
    say(f"   git repos with SSH-signed release tags ({key.fingerprint})")

    policy = root / "policy.yaml"
    doc = {
        "apiVersion": "gitops-gate.dev/v1alpha1",
        "kind": "GatePolicy",
        "metadata": {"name": "demo-production"},
        "spec": {
            "keys": {
                "release-team": {"ssh": key.public_line},
                "charts-team": {"pgp": charts_key},
                "ci": {"publicKey": ci.public_pem().decode()},
                "gha-release": {
                    "keyless": {
                        "issuer": "https://token.actions.githubusercontent.com",
                        "subject": "https://github.com/acme/shop/.github/workflows/release.yml"
                        "@refs/tags/*",
                    }
                },
            },
            "trustRoots": {"sigstore": str(authority.trusted_root_path)},
            "source": {"git": {"require": "tag", "tags": ["v*"], "signers": ["release-team"]}},
            "charts": [
                {"match": [f"{chart_repo}/**"], "provenance": {"signers": ["charts-team"]}},
            ],
            "images": [
                {
                    # Services built by the release workflow: signed, with SLSA provenance.
                    "match": [f"{host}/shop/api", f"{host}/shop/worker"],
                    "signatures": {"signers": ["gha-release"]},
                    "attestations": [
                        {
                            "predicateType": "https://slsa.dev/provenance/v1",
                            "signers": ["gha-release"],
                            "slsa": {
                                "builderId": "https://github.com/acme/shop/.github/workflows/"
                                "release.yml@refs/tags/*",
                                "sourceUri": "git+https://github.com/acme/shop",
                                "sourceVersionedTag": "v1",
                            },
                        }
                    ],
                },
                {"match": [f"{host}/shop/**"], "signatures": {"signers": ["ci", "gha-release"]}},
                {
                    "match": ["docker.io/library/busybox"],
                    "exempt": "vendor image, reviewed 2026-11",
                },
            ],
            # The loopback demo registry speaks plain HTTP.
            "registries": [
                {"host": host, "insecure": True},
                {"host": chart_repo.removeprefix("http://"), "insecure": True},
            ],
        },
    }
    policy.write_text(
        "# The operator's policy: mounted into the gate, never read from the app repository.\n"
        + yaml.safe_dump(doc, sort_keys=False)
    )
    say(f"   policy {policy}")
    scenarios = [
        Scenario("signed release v1.0.0, signed images", r_good.path / "deploy", 0, None),
        Scenario(
            "signed release, but one image is unsigned",
            r_unsigned_img.path / "deploy",
            1,
            "unsigned",
        ),
        Scenario("tag v1.0.0 re-pushed as v2.0.0", r_retag.path / "deploy", 1, "tag-name-mismatch"),
        Scenario("an image no rule covers", r_nopolicy.path / "deploy", 1, "no-policy"),
        Scenario(
            "a Helm chart whose dependency is signed by the charts team",
            r_chart.path / "chart",
            0,
            None,
        ),
        Scenario(
            "a Helm chart whose dependency is signed by an untrusted key",
            r_chart_bad.path / "chart",
            1,
            "untrusted-signer",
        ),
        Scenario(
            "an image whose provenance names another builder",
            r_builder.path / "deploy",
            1,
            "builder-mismatch",
        ),
    ]
    return World(registry, policy, images, scenarios)


def run_gate(world: World, scenario: Scenario, out: Path) -> tuple[int, dict[str, object]]:
    report = out.with_suffix(".report.json")
    cmd = [
        sys.executable, "-m", "gate", "verify", str(scenario.source),
        "--policy", str(world.policy), "--manifests", str(out), "--report", str(report),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "GATE_"))}
    proc = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True, timeout=120)
    sys.stderr.write(textwrap.indent(proc.stderr, "   "))
    import json

    return proc.returncode, json.loads(report.read_text()) if report.exists() else {}


@contextmanager
def workspace() -> Iterator[Path]:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    tmp = Path(tempfile.mkdtemp(prefix="gate-demo-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    failures = 0
    with workspace() as root, running_registry(root / "registry") as registry, ExitStack() as stack:
        world = build_world(root, registry, stack)
        shutil.copy(world.policy, OUT / "policy.yaml")
        for i, sc in enumerate(world.scenarios, start=2):
            rel = sc.source.relative_to(root)
            say(f"\n{BOLD}{i}. {sc.title}{RESET}\n   $ gate verify {rel} --policy policy.yaml")
            out = OUT / f"scenario-{i}.yaml"
            code, report = run_gate(world, sc, out)
            reasons = {
                f["reason"] for f in report.get("findings", []) if f.get("outcome") == "fail"
            }  # type: ignore[union-attr]
            ok = code == sc.expect_exit and (
                sc.expect_reason is None or sc.expect_reason in reasons
            )
            if code == 0 and out.exists():
                say(f"   {DIM}pinned manifests ({out}):{RESET}")
                for line in out.read_text().splitlines():
                    if "image:" in line:
                        say(f"     {line.strip()}")
            verdict = (
                "as expected"
                if ok
                else f"UNEXPECTED (wanted exit {sc.expect_exit} {sc.expect_reason or ''})"
            )
            say(f"   => exit {code}: {verdict}")
            failures += not ok
    summary = "every outcome as expected" if not failures else f"{failures} UNEXPECTED outcome(s)"
    say(f"\n{BOLD}demo finished: {summary}{RESET}; files in {OUT}/")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
