"""The real helm (4.1.4) rendering charts through the hardened pyhelm3 Command."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.cli import main
from gate.errors import ManifestError, RenderError, SizeLimitError
from gate.render import HelmRenderer, RenderRequest, select_renderer
from gate.render.base import Rendered, VerifiedChart
from testkit.helmcharts import Helm, make_chart, package_chart
from tests.unit.helpers import write_policy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("helm") is None, reason="helm not on PATH"),
]

IMAGE = "registry.example.com/acme/app"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def render(chart: Path, **kw: Any) -> Rendered:
    renderer = select_renderer(chart)
    assert isinstance(renderer, HelmRenderer)
    return renderer.render(RenderRequest(source_dir=chart, **kw))


def by_kind(rendered: Rendered, kind: str) -> list[dict[str, Any]]:
    return [d for d in rendered.documents if d.get("kind") == kind]


def images(rendered: Rendered) -> list[str]:
    out = []
    for doc in rendered.documents:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", spec)
        out += [c["image"] for c in pod.get("containers", [])]
    return out


def configmap(name: str, data: str) -> str:
    """A template that renders one ConfigMap; ``data`` is the YAML of its data block."""
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}"


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server (random port) that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.requests.append(self.path)
                body = b'{"type": "object"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """testkit's demo chart (one Deployment, image from values) in a source directory."""
    return make_chart(tmp_path / "src", "demo")


def packaged(helm: Helm, workdir: Path, name: str, version: str, image: str) -> bytes:
    """``helm package`` of a dependency chart whose Deployment runs ``image``."""
    src = make_chart(workdir / "dep-src" / image.replace("/", "_"), name, version, image=image)
    return package_chart(helm, src, workdir / "dep-dist" / image.replace("/", "_")).tgz.read_bytes()


def verified_chart(name: str, version: str, data: bytes) -> VerifiedChart:
    return VerifiedChart(
        name=name,
        version=version,
        source=f"https://charts.example.com/{name}-{version}.tgz",
        archive=data,
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
    )


# --- rendering ---------------------------------------------------------------------------


def test_values_files_api_versions_and_namespace(chart: Path) -> None:
    write(
        chart / "templates" / "monitor.yaml",
        '{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}\n'
        + configmap(
            "monitor", "  ns: {{ .Release.Namespace | quote }}\n  name: {{ .Release.Name }}\n"
        )
        + "{{- end }}\n",
    )
    prod = write(chart / "env" / "prod.yaml", 'image:\n  tag: "2.0"\n')
    extra = write(chart / "env" / "replicas.yaml", "replicaCount: 3\n")
    out = render(
        chart,
        values_files=(prod, extra),
        api_versions=("monitoring.coreos.com/v1",),
        namespace="prod",
        release_name="web",
    )
    (deployment,) = by_kind(out, "Deployment")
    assert images(out) == [f"{IMAGE}:2.0"]
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["name"] == "web-demo"
    (monitor,) = by_kind(out, "ConfigMap")
    assert monitor["data"] == {"ns": "prod", "name": "web"}
    assert out.renderer == "helm"
    assert {"Chart.yaml", "values.yaml", "env/prod.yaml", "templates/deployment.yaml"} <= set(
        out.files
    )
    # Without the API version the optional object is not rendered.
    assert by_kind(render(chart), "ConfigMap") == []


@pytest.mark.parametrize(("given", "seen"), [("1.29.0", "v1.29.0"), ("v1.33.2", "v1.33.2")])
def test_kube_version_follows_the_request(chart: Path, given: str, seen: str) -> None:
    write(
        chart / "templates" / "kube.yaml",
        configmap("kube", "  version: {{ .Capabilities.KubeVersion.Version | quote }}\n"),
    )
    (cm,) = by_kind(render(chart, kube_version=given), "ConfigMap")
    assert cm["data"]["version"] == seen


def test_hooks_tests_and_crds_are_passed_on(chart: Path) -> None:
    """As Argo CD renders: --include-crds, hooks and tests kept (Argo CD maps hooks)."""
    write(
        chart / "crds" / "widgets.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
        "metadata:\n  name: widgets.example.com\n",
    )
    write(
        chart / "templates" / "migrate.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n"
        '    "helm.sh/hook": pre-install,pre-upgrade\nspec:\n  template:\n    spec:\n'
        "      containers:\n        - name: m\n"
        "          image: registry.example.com/acme/migrate:1\n",
    )
    write(
        chart / "templates" / "tests" / "smoke.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: smoke\n  annotations:\n"
        '    "helm.sh/hook": test\nspec:\n  containers:\n'
        "    - name: t\n      image: registry.example.com/acme/smoke:1\n",
    )
    out = render(chart)
    kinds = sorted(d["kind"] for d in out.documents)
    assert kinds == ["CustomResourceDefinition", "Deployment", "Job", "Pod"]
    assert set(images(out)) == {
        f"{IMAGE}:1.0.0",
        "registry.example.com/acme/migrate:1",
        "registry.example.com/acme/smoke:1",
    }
    assert "crds/widgets.yaml" in out.files


# --- no cluster, no network, no inherited environment -------------------------------------


def test_lookup_gets_nothing_and_the_gate_environment_does_not_leak(
    chart: Path, tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = write(
        tmp_path / "kubeconfig",
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": recorder.url}}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        ),
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HELM_KUBEAPISERVER", recorder.url)
    monkeypatch.setenv("HELM_NAMESPACE", "leaked")
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", str(tmp_path / "leaked-repos.yaml"))
    monkeypatch.setenv("HTTPS_PROXY", recorder.url)
    write(
        chart / "templates" / "probe.yaml",
        '{{- $secrets := lookup "v1" "Secret" "kube-system" "" }}\n'
        + configmap(
            "probe",
            "  secrets: {{ $secrets | toJson | quote }}\n"
            "  namespace: {{ .Release.Namespace | quote }}\n"
            '  host: {{ getHostByName "example.com" | quote }}\n',
        ),
    )
    (cm,) = by_kind(render(chart), "ConfigMap")
    assert cm["data"] == {"secrets": "{}", "namespace": "default", "host": ""}
    assert recorder.requests == []


def test_schema_with_a_remote_ref_is_not_fetched(chart: Path, recorder: Recorder) -> None:
    write(
        chart / "values.schema.json",
        json.dumps(
            {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$ref": f"{recorder.url}/schema.json",
                "required": ["notInTheValues"],  # would fail if the schema were applied
            }
        ),
    )
    assert images(render(chart)) == [f"{IMAGE}:1.0.0"]
    assert recorder.requests == []


# --- what may be rendered -----------------------------------------------------------------


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_values_file_outside_the_source_is_denied(chart: Path, tmp_path: Path, how: str) -> None:
    outside = write(tmp_path / "evil.yaml", "image:\n  repository: evil.example.com/x\n")
    given = chart / ".." / "evil.yaml" if how == "dotdot" else chart / str(outside)
    with pytest.raises(ManifestError) as info:
        render(chart, values_files=(given,))
    assert info.value.reason == "values-outside-source"


def test_symlink_out_of_the_source_is_denied(chart: Path, tmp_path: Path) -> None:
    os.symlink(write(tmp_path / "host-secret", "token\n"), chart / "secret.txt")
    with pytest.raises(ManifestError) as info:
        render(chart)
    assert info.value.reason == "symlink-escape"


def add_dependency(chart: Path, dep: dict[str, Any]) -> None:
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta.setdefault("dependencies", []).append(dep)
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))


REDIS = {"name": "redis", "version": "1.2.3", "repository": "https://charts.example.com"}


@pytest.fixture
def redis_archives(helm_tool: Helm, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The genuine redis 1.2.3 archive and a tampered one with the same name and version."""
    work = tmp_path_factory.mktemp("redis")
    return {
        "genuine": packaged(helm_tool, work, "redis", "1.2.3", "registry.example.com/acme/redis"),
        "tampered": packaged(helm_tool, work, "redis", "1.2.3", "evil.example.com/miner"),
    }


def test_vendored_remote_dependency_without_verification_is_denied(
    chart: Path, redis_archives: dict[str, bytes]
) -> None:
    add_dependency(chart, {**REDIS, "condition": "redis.enabled"})
    (chart / "charts").mkdir()
    (chart / "charts" / "redis-1.2.3.tgz").write_bytes(redis_archives["tampered"])
    with pytest.raises(ManifestError) as info:
        render(chart)
    assert info.value.reason == "chart-unverified"
    assert "redis" in info.value.message


def test_verified_chart_replaces_the_vendored_copy(
    chart: Path, redis_archives: dict[str, bytes]
) -> None:
    add_dependency(chart, REDIS)
    (chart / "charts").mkdir()
    # The tampered copy under another file name: helm goes by the name inside.
    (chart / "charts" / "cache.tgz").write_bytes(redis_archives["tampered"])
    out = render(chart, charts=(verified_chart("redis", "1.2.3", redis_archives["genuine"]),))
    assert sorted(images(out)) == [
        "registry.example.com/acme/app:1.0.0",
        "registry.example.com/acme/redis:1.0.0",
    ]
    assert "charts/redis/templates/deployment.yaml" in out.files


def test_file_dependency_inside_the_source_renders(chart: Path) -> None:
    make_chart(chart / "libs", "common", image="registry.example.com/acme/common")
    add_dependency(
        chart, {"name": "common", "version": "0.1.0", "repository": "file://libs/common"}
    )
    assert sorted(images(render(chart))) == [
        "registry.example.com/acme/app:1.0.0",
        "registry.example.com/acme/common:1.0.0",
    ]


# --- limits -----------------------------------------------------------------------------


def test_template_that_loops_hits_the_time_limit(chart: Path) -> None:
    write(
        chart / "templates" / "loop.yaml",
        "{{- range until 100000 }}{{- range until 100000 }}{{- end }}{{- end }}\n",
    )
    with pytest.raises(RenderError) as info:
        render(chart, timeout_s=2)
    assert info.value.reason == "render-timeout"


def test_template_that_prints_too_much_hits_the_output_cap(chart: Path) -> None:
    write(
        chart / "templates" / "big.yaml",
        "{{- range $i := until 5000 }}\n---\n"
        + configmap("big-{{ $i }}", '  pad: "' + "x" * 200 + '"\n')
        + "{{- end }}\n",
    )
    with pytest.raises(SizeLimitError) as info:
        render(chart, max_output_bytes=64 * 1024)
    assert info.value.reason == "size-limit"


def test_helm_error_names_the_source_not_the_private_copy(chart: Path) -> None:
    write(chart / "templates" / "bad.yaml", '{{ fail "no database configured" }}\n')
    with pytest.raises(RenderError) as info:
        render(chart)
    assert info.value.reason == "render-failed"
    assert "no database configured" in info.value.message
    assert "gate-helm-" not in info.value.message


def test_duplicate_key_in_the_output_names_the_template(chart: Path) -> None:
    write(
        chart / "templates" / "dup.yaml",
        configmap("dup", '  a: "1"\n  a: "2"\n'),
    )
    with pytest.raises(ManifestError) as info:
        render(chart)
    assert info.value.reason == "duplicate-key"
    assert "demo/templates/dup.yaml" in info.value.message


# --- end to end ---------------------------------------------------------------------------


def test_gate_verify_on_a_chart(
    chart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(
        tmp_path / "policy.yaml",
        {"images": [{"match": ["registry.example.com/**"], "exempt": "test image"}]},
    )
    prod = write(chart / "values-prod.yaml", 'image:\n  tag: "3.1"\n')
    out = tmp_path / "out.yaml"
    report = tmp_path / "report.json"
    code = main(
        [
            "verify",
            str(chart),
            "--policy",
            str(policy),
            "--values",
            str(prod),
            "--manifests",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0, capsys.readouterr().err
    (doc,) = list(yaml.safe_load_all(out.read_text()))
    assert doc["spec"]["template"]["spec"]["containers"][0]["image"] == f"{IMAGE}:3.1"
    findings = json.loads(report.read_text())["findings"]
    assert any(f["check"] == "render" and "helm" in (f.get("detail") or "") for f in findings)


def test_gate_verify_denies_values_outside_the_chart(
    chart: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(
        tmp_path / "policy.yaml",
        {"images": [{"match": ["registry.example.com/**"], "exempt": "test image"}]},
    )
    evil = write(tmp_path / "evil.yaml", "image:\n  repository: evil.example.com/x\n")
    code = main(["verify", str(chart), "--policy", str(policy), "--values", str(evil)])
    assert code == 1
    assert "values-outside-source" in capsys.readouterr().err
