"""The real ``kubectl kustomize`` on a small overlay, contained."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gate.errors import ManifestError, RenderError
from gate.manifests import extract_images
from gate.render import KustomizeRenderer, RenderRequest, select_renderer
from gate.yamlstrict import dump_all, load_all

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH"),
]

BASE_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.example.com/acme/web:1.0
        env:
        - {name: ENABLED, value: "yes"}
        - {name: PORT, value: "8080"}
"""

OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: prod
resources:
- ../../base
images:
- name: registry.example.com/acme/web
  newTag: "1.1"
patches:
- target: {kind: Deployment, name: web}
  patch: |
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      template:
        spec:
          initContainers:
          - name: migrate
            image: registry.example.com/acme/migrate:2.0
"""


def make_repo(root: Path) -> Path:
    (root / "base").mkdir(parents=True)
    (root / "base" / "deployment.yaml").write_text(BASE_DEPLOYMENT)
    (root / "base" / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    overlay = root / "overlays" / "prod"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(OVERLAY)
    return overlay


def test_overlay_with_base_and_patch(tmp_path: Path) -> None:
    overlay = make_repo(tmp_path)
    renderer = select_renderer(overlay)
    assert isinstance(renderer, KustomizeRenderer)
    rendered = renderer.render(RenderRequest(overlay, timeout_s=30))
    assert rendered.renderer == "kustomize"
    assert rendered.files == ("../../base/kustomization.yaml", "kustomization.yaml")
    (deployment,) = rendered.documents
    assert deployment["metadata"]["namespace"] == "prod"
    refs = {(o.path[-3], o.ref) for o in extract_images(rendered.documents)}
    assert refs == {
        ("containers", "registry.example.com/acme/web:1.1"),
        ("initContainers", "registry.example.com/acme/migrate:2.0"),
    }
    # string values that look like bools / numbers survive the round trip
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "ENABLED", "value": "yes"}, {"name": "PORT", "value": "8080"}]
    assert load_all(dump_all(rendered.documents), source="dump") == rendered.documents


def test_remote_base_refused(tmp_path: Path) -> None:
    overlay = make_repo(tmp_path)
    (overlay / "kustomization.yaml").write_text(
        "resources:\n- ../../base\n- https://github.com/kubernetes-sigs/kustomize//examples/"
        "helloWorld?ref=v3.3.1\n"
    )
    with pytest.raises(ManifestError) as info:
        KustomizeRenderer().render(RenderRequest(overlay, timeout_s=30))
    assert info.value.reason == "remote-base"


def test_remote_reference_missed_by_the_check_still_cannot_fetch(tmp_path: Path) -> None:
    """Defence in depth: even run directly, kustomize gets no network and no git."""
    from gate.render.kustomize import _OFFLINE_ENV
    from gate.render.process import run_tool

    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n- https://raw.githubusercontent.com/kubernetes/website/main/content/en/"
        "examples/pods/simple-pod.yaml\n"
    )
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    with pytest.raises(RenderError) as info:
        run_tool(
            [kubectl, "kustomize", str(tmp_path)],
            cwd=tmp_path,
            timeout_s=30,
            max_output_bytes=1024 * 1024,
            env_extra=_OFFLINE_ENV,
        )
    assert info.value.reason == "render-failed"
    # the proxy refuses the HTTP fetch, and git may use no transport
    assert "connection refused" in info.value.message
    assert "transport 'https' not allowed" in info.value.message


def test_files_outside_the_root_are_refused(tmp_path: Path) -> None:
    """LoadRestrictionsRootOnly: a patch file outside the kustomization's directory."""
    overlay = make_repo(tmp_path)
    (tmp_path / "secret-patch.yaml").write_text("kind: Deployment\nmetadata: {name: web}\n")
    (overlay / "kustomization.yaml").write_text(
        "resources: [../../base]\npatches:\n- path: ../../secret-patch.yaml\n"
    )
    with pytest.raises(RenderError) as info:
        KustomizeRenderer().render(RenderRequest(overlay, timeout_s=30))
    assert info.value.reason == "render-failed"
    assert "secret-patch.yaml" in info.value.message


def test_kustomize_error_is_a_render_error(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError) as info:
        KustomizeRenderer().render(RenderRequest(tmp_path, timeout_s=30))
    assert info.value.reason == "render-failed" and "missing.yaml" in info.value.message


def test_helm_charts_in_kustomize_are_not_inflated(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text(
        "helmCharts:\n- name: web\n  repo: ./charts\n  version: 1.0.0\n"
    )
    with pytest.raises(RenderError):
        KustomizeRenderer().render(RenderRequest(tmp_path, timeout_s=30))


def test_symlink_out_of_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "stolen.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n"
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "link.yaml").symlink_to(tmp_path / "outside" / "stolen.yaml")
    (src / "kustomization.yaml").write_text("resources: [link.yaml]\n")
    with pytest.raises(RenderError) as info:
        KustomizeRenderer().render(RenderRequest(src, timeout_s=30))
    assert "is not in or below" in info.value.message
