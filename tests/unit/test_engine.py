"""The engine: findings, exit codes, fail-closed behaviour, pinning, audit mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.engine import Context, Engine, GateRequest, ImageCheck, SourceInfo, Verifiers
from gate.errors import FetchError, SignatureError
from gate.reference import ImageReference
from tests.unit.helpers import deployment, make_policy, write_source

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
SIGNED = {"match": ["registry.example.com/acme/**"], "signatures": {"signers": ["ci"]}}
EXEMPT = {"match": ["docker.io/library/busybox"], "exempt": "vendor image"}


def _keys() -> dict[str, Any]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return {"ci": {"publicKey": pem}}


KEYS = _keys()


class FakeImages:
    """An image verifier for engine tests: a fixed verdict per reference."""

    def __init__(self, digests: Mapping[str, str], fail: Mapping[str, Exception] | None = None):
        self.digests = digests
        self.fail = fail or {}
        self.calls = 0

    def verify_images(
        self, ctx: Context, checks: Sequence[ImageCheck]
    ) -> Mapping[ImageReference, str]:
        self.calls += 1
        out: dict[ImageReference, str] = {}
        for c in checks:
            exc = self.fail.get(str(c.ref))
            if exc is not None:
                ctx.findings.error("image.signature", str(c.ref), exc)
            elif str(c.ref) in self.digests:
                ctx.findings.passed("image.signature", str(c.ref))
                out[c.ref] = self.digests[str(c.ref)]
        return out


class Boom:
    def verify_images(self, ctx: Context, checks: Sequence[ImageCheck]) -> Any:
        raise KeyError("a bug")


def run(
    tmp_path: Path, spec: dict[str, Any], *docs: dict[str, Any], verifiers: Verifiers | None = None
):  # type: ignore[no-untyped-def]
    src = write_source(tmp_path / "src", *docs)
    engine = Engine(make_policy({"keys": KEYS, **spec}), verifiers or Verifiers())
    return engine.run(GateRequest(source=SourceInfo(path=src)))


def reasons(result: Any) -> set[tuple[str, str]]:
    return {(f.subject, f.reason) for f in result.report.findings if f.outcome == "fail"}


def test_allow_with_exempt_image_emits_manifests(tmp_path: Path) -> None:
    r = run(tmp_path, {"images": [EXEMPT]}, deployment("web", "busybox:1.36"))
    assert r.exit_code == 0 and r.report.decision == "allow"
    assert r.manifests is not None
    docs = list(yaml.safe_load_all(r.manifests))
    assert docs[0]["kind"] == "Deployment"
    exempt = [f for f in r.report.findings if f.outcome == "exempt"]
    assert exempt and exempt[0].reason == "exempt" and "vendor image" in exempt[0].detail
    # exempt images are not pinned, and the report says so
    assert any(f.reason == "not-pinned" and f.outcome == "warn" for f in r.report.findings)


def test_image_without_rule_is_denied(tmp_path: Path) -> None:
    r = run(tmp_path, {"images": [EXEMPT]}, deployment("web", "redis:7"))
    assert r.exit_code == 1 and r.report.decision == "deny"
    assert r.manifests is None
    assert reasons(r) == {("docker.io/library/redis:7", "no-policy")}


def test_hidden_images_are_all_found(tmp_path: Path) -> None:
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {"spec": {"containers": [{"name": "c", "image": "evil/cron"}]}}
                }
            }
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "ephemeralContainers": [{"name": "e", "image": "evil/debug"}],
        },
    }
    r = run(
        tmp_path, {"images": [EXEMPT]}, deployment("w", "busybox", init=("evil/init",)), cron, pod
    )
    assert {s for s, _ in reasons(r)} == {
        "docker.io/evil/init:latest",
        "docker.io/evil/cron:latest",
        "docker.io/evil/debug:latest",
    }
    assert r.manifests is None


def test_verified_images_are_pinned(tmp_path: Path) -> None:
    fake = FakeImages({"registry.example.com/acme/app:v1": D1})
    r = run(
        tmp_path,
        {"images": [SIGNED, EXEMPT]},
        deployment("web", "registry.example.com/acme/app:v1", "busybox@" + D2),
        verifiers=Verifiers(images=fake),
    )
    assert r.exit_code == 0, r.report.render_text()
    doc = next(yaml.safe_load_all(r.manifests or ""))
    images = [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]]
    assert images == ["registry.example.com/acme/app:v1@" + D1, "busybox@" + D2]
    assert {(i.ref, i.digest) for i in r.report.images} == {
        ("registry.example.com/acme/app:v1", D1),
        ("docker.io/library/busybox@" + D2, D2),
    }


def test_same_image_twice_is_verified_once(tmp_path: Path) -> None:
    fake = FakeImages({"registry.example.com/acme/app:v1": D1})
    ref = "registry.example.com/acme/app:v1"
    r = run(
        tmp_path,
        {"images": [SIGNED]},
        deployment("a", ref, ref),
        deployment("b", ref),
        verifiers=Verifiers(images=fake),
    )
    assert r.exit_code == 0
    assert fake.calls == 1
    assert [f.subject for f in r.report.findings if f.check == "image.signature"] == [ref]


def test_pinning_can_be_switched_off(tmp_path: Path) -> None:
    fake = FakeImages({"registry.example.com/acme/app:v1": D1})
    r = run(
        tmp_path,
        {"images": [SIGNED], "output": {"pinDigests": False}},
        deployment("web", "registry.example.com/acme/app:v1"),
        verifiers=Verifiers(images=fake),
    )
    assert r.exit_code == 0 and "@sha256" not in (r.manifests or "")


def test_verification_failure_is_deny_with_its_reason(tmp_path: Path) -> None:
    ref = "registry.example.com/acme/app:v1"
    fake = FakeImages({}, fail={ref: SignatureError("signature does not verify")})
    r = run(tmp_path, {"images": [SIGNED]}, deployment("w", ref), verifiers=Verifiers(images=fake))
    assert r.exit_code == 1 and r.manifests is None
    assert reasons(r) == {(ref, "bad-signature")}


def test_unobtainable_evidence_is_exit_3(tmp_path: Path) -> None:
    ref = "registry.example.com/acme/app:v1"
    fake = FakeImages({}, fail={ref: FetchError("registry did not answer")})
    r = run(tmp_path, {"images": [SIGNED]}, deployment("w", ref), verifiers=Verifiers(images=fake))
    assert r.exit_code == 3 and r.report.decision == "error" and r.manifests is None
    assert reasons(r) == {(ref, "registry-unreachable")}


def test_deny_wins_over_undecided(tmp_path: Path) -> None:
    a, b = "registry.example.com/acme/a:1", "registry.example.com/acme/b:1"
    fake = FakeImages({}, fail={a: FetchError("x"), b: SignatureError("y")})
    r = run(tmp_path, {"images": [SIGNED]}, deployment("w", a, b), verifiers=Verifiers(images=fake))
    assert r.exit_code == 1


def test_exception_in_verifier_is_exit_4_and_no_manifests(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        {"images": [SIGNED]},
        deployment("w", "registry.example.com/acme/a:1"),
        verifiers=Verifiers(images=Boom()),
    )
    assert r.exit_code == 4 and r.report.decision == "error"
    assert r.manifests is None
    assert any(f.reason == "internal-error" and "KeyError" in f.detail for f in r.report.findings)


def test_verifier_that_forgets_an_image_fails_closed(tmp_path: Path) -> None:
    fake = FakeImages({})  # decides nothing, records nothing
    r = run(
        tmp_path,
        {"images": [SIGNED]},
        deployment("w", "registry.example.com/acme/a:1"),
        verifiers=Verifiers(images=fake),
    )
    assert r.exit_code == 4 and r.manifests is None


def test_missing_image_verifier_is_a_deny(tmp_path: Path) -> None:
    r = run(tmp_path, {"images": [SIGNED]}, deployment("w", "registry.example.com/acme/a:1"))
    assert r.exit_code == 1
    assert reasons(r) == {("registry.example.com/acme/a:1", "verifier-unavailable")}


def test_git_policy_without_git_verifier_is_a_deny(tmp_path: Path) -> None:
    spec = {"images": [EXEMPT], "source": {"git": {"signers": ["ci"]}}}
    r = run(tmp_path, spec, deployment("w", "busybox"))
    assert r.exit_code == 1 and r.manifests is None
    assert ("HEAD", "verifier-unavailable") in reasons(r)


def test_source_verifier_exception_is_caught(tmp_path: Path) -> None:
    class BadGit:
        def verify_source(self, ctx: Context) -> None:
            raise ZeroDivisionError

    spec = {"images": [EXEMPT], "source": {"git": {"signers": ["ci"]}}}
    r = run(tmp_path, spec, deployment("w", "busybox"), verifiers=Verifiers(source=BadGit()))
    assert r.exit_code == 4 and r.manifests is None


def test_all_findings_are_collected(tmp_path: Path) -> None:
    spec = {"images": [EXEMPT], "source": {"git": {"signers": ["ci"]}}}
    r = run(tmp_path, spec, deployment("w", "redis", "nginx"))
    assert len(reasons(r)) == 3  # git + two images: the run did not stop at the first


def test_duplicate_key_in_manifests_is_a_deny(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "  - name: c\n    image: busybox\n    image: evil/miner\n"
    )
    r = Engine(make_policy({"images": [EXEMPT]})).run(GateRequest(source=SourceInfo(path=src)))
    assert r.manifests is None and r.exit_code == 1
    assert any(f.reason == "duplicate-key" for f in r.report.failures)


def test_invalid_reference_is_a_deny(tmp_path: Path) -> None:
    r = run(tmp_path, {"images": [EXEMPT]}, deployment("w", "Registry.example.com/Acme/App"))
    assert r.exit_code == 1
    assert {reason for _, reason in reasons(r)} == {"invalid-reference"}


def test_audit_mode_allows_and_warns(tmp_path: Path) -> None:
    r = run(tmp_path, {"mode": "audit", "images": [EXEMPT]}, deployment("w", "redis"))
    assert r.exit_code == 0 and r.report.decision == "allow"
    assert r.manifests is not None
    assert any(f.outcome == "warn" and f.reason == "no-policy" for f in r.report.findings)
    assert "AUDIT MODE" in r.report.render_text()
    assert r.report.to_json()["mode"] == "audit"


def test_audit_mode_does_not_turn_a_bug_into_an_allow(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        {"mode": "audit", "images": [SIGNED]},
        deployment("w", "registry.example.com/acme/a:1"),
        verifiers=Verifiers(images=Boom()),
    )
    assert r.exit_code == 4 and r.manifests is None


def test_clock_is_read_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def clock() -> dt.datetime:
        calls.append(1)
        return dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)

    src = write_source(tmp_path / "s", deployment("w", "busybox"))
    seen: list[dt.datetime] = []

    class Git:
        def verify_source(self, ctx: Context) -> None:
            seen.append(ctx.now)
            ctx.findings.passed("git.source", "HEAD")

    policy = make_policy({"keys": KEYS, "images": [EXEMPT], "source": {"git": {"signers": ["ci"]}}})
    r = Engine(policy, Verifiers(source=Git()), clock=clock).run(GateRequest(SourceInfo(src)))
    assert r.exit_code == 0
    assert len(calls) == 1 and seen == [dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)]
    assert r.report.to_json()["verifiedAt"] == "2026-11-26T12:00:00Z"


def test_report_shape(tmp_path: Path) -> None:
    r = run(tmp_path, {"images": [EXEMPT]}, deployment("w", "redis"))
    j = r.report.to_json()
    assert set(j) >= {"decision", "policy", "source", "findings", "images", "timing"}
    assert j["policy"]["digest"].startswith("sha256:")
    assert set(j["findings"][0]) == {"check", "subject", "outcome", "reason", "detail"}
    assert isinstance(j["timing"]["total_ms"], float)


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_image_field_is_a_deny(tmp_path: Path, bad: str) -> None:
    r = run(tmp_path, {"images": [EXEMPT]}, deployment("w", bad))
    assert r.exit_code == 1 and r.manifests is None


def test_unclaimed_image_key_is_warned(tmp_path: Path) -> None:
    prom = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "main"},
        "spec": {"image": "quay.io/prometheus/prometheus:v2"},
    }
    r = run(tmp_path, {"images": [EXEMPT]}, prom)
    warns = [f for f in r.report.findings if f.reason == "unchecked-image-field"]
    assert warns and warns[0].outcome == "warn" and "spec.image" in warns[0].subject


def test_image_fields_make_custom_resources_checked(tmp_path: Path) -> None:
    prom = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "main"},
        "spec": {"image": "quay.io/prometheus/prometheus:v2"},
    }
    fields = [
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus", "paths": ["spec.image"]}
    ]
    r = run(tmp_path, {"images": [EXEMPT], "imageFields": fields}, prom)
    assert reasons(r) == {("quay.io/prometheus/prometheus:v2", "no-policy")}


class FailingCharts:
    def __init__(self, exc: Exception | None = None) -> None:
        self.exc = exc

    def verify_charts(self, ctx: Context) -> Sequence[Any]:
        if self.exc is not None:
            raise self.exc
        ctx.findings.failed(
            "chart.provenance", "https://charts.example.com/db-1.0.0.tgz", "unsigned"
        )
        return []


def test_chart_failure_stops_before_render(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        {"images": [EXEMPT]},
        deployment("w", "busybox"),
        verifiers=Verifiers(charts=FailingCharts()),
    )
    assert r.exit_code == 1 and r.manifests is None
    assert not any(f.check == "render" for f in r.report.findings)
    assert reasons(r) == {("https://charts.example.com/db-1.0.0.tgz", "unsigned")}


def test_chart_verifier_exception_is_exit_4(tmp_path: Path) -> None:
    r = run(
        tmp_path,
        {"images": [EXEMPT]},
        deployment("w", "busybox"),
        verifiers=Verifiers(charts=FailingCharts(RuntimeError("bug"))),
    )
    assert r.exit_code == 4 and r.manifests is None
    assert not any(f.check == "render" for f in r.report.findings)


def test_unclaimed_image_key_can_be_denied(tmp_path: Path) -> None:
    prom = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "Prometheus",
        "metadata": {"name": "main"},
        "spec": {"image": "quay.io/prometheus/prometheus:v2"},
    }
    r = run(tmp_path, {"images": [EXEMPT], "uncheckedImageFields": "deny"}, prom)
    assert r.exit_code == 1 and r.manifests is None
    assert reasons(r) == {("Prometheus/main spec.image", "unchecked-image-field")}
