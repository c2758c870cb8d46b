"""Kustomize bases may leave the app directory, never the checkout (red-team finding)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from gate.engine import Engine, GateRequest, SourceInfo, Verifiers, checkout_root
from tests.unit.helpers import deployment, make_policy

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")

EXEMPT = {"match": ["docker.io/library/busybox"], "exempt": "vendor image"}


def _kustomization(path: Path, *resources: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "kustomization.yaml").write_text(yaml.safe_dump({"resources": list(resources)}))


def _layout(tmp_path: Path, base: Path) -> Path:
    """checkout/apps/web/overlay -> a base at ``base``."""
    _kustomization(base, "deploy.yaml")
    (base / "deploy.yaml").write_text(yaml.safe_dump(deployment("web", "busybox:1.36")))
    overlay = tmp_path / "checkout" / "apps" / "web"
    _kustomization(overlay, os.path.relpath(base, overlay))
    return overlay


def _run(overlay: Path, app_path: str | None):  # type: ignore[no-untyped-def]
    engine = Engine(make_policy({"images": [EXEMPT]}), Verifiers())
    return engine.run(GateRequest(SourceInfo(path=overlay, app_path=app_path)))


def test_base_inside_the_checkout_renders(tmp_path: Path) -> None:
    overlay = _layout(tmp_path, tmp_path / "checkout" / "base")
    r = _run(overlay, "apps/web")
    assert r.exit_code == 0, r.report.render_text()


def test_base_outside_the_checkout_is_denied(tmp_path: Path) -> None:
    # Another repository's checkout next to this one (as in Argo CD's repo-server).
    overlay = _layout(tmp_path, tmp_path / "other-repo" / "base")
    r = _run(overlay, "apps/web")
    assert r.exit_code == 1 and r.manifests is None
    assert {f.reason for f in r.report.failures} == {"path-outside-checkout"}


def test_checkout_root_from_git_without_app_path(tmp_path: Path) -> None:
    overlay = _layout(tmp_path, tmp_path / "other-repo" / "base")
    (tmp_path / "checkout" / ".git").mkdir()
    r = _run(overlay, None)
    assert {f.reason for f in r.report.failures} == {"path-outside-checkout"}


def test_checkout_root_rules(tmp_path: Path) -> None:
    app = tmp_path / "c" / "apps" / "web"
    app.mkdir(parents=True)
    assert checkout_root(SourceInfo(app, app_path="apps/web")) == (tmp_path / "c").resolve()
    assert checkout_root(SourceInfo(app, app_path=".")) == app.resolve()
    (tmp_path / "c" / ".git").mkdir()
    assert checkout_root(SourceInfo(app)) == (tmp_path / "c").resolve()
