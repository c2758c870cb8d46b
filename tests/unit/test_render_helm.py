"""Helm rendering without helm: the staged copy, the argv, the hardened pyhelm3 Command.

The real helm binary is exercised in tests/integration/test_render_helm.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.aio import run_sync
from gate.errors import (
    DigestMismatchError,
    ManifestError,
    RenderError,
    SizeLimitError,
    UsageError,
)
from gate.render import RenderRequest
from gate.render.base import VerifiedChart
from gate.render.helm import HelmRenderer, template_argv
from gate.render.helm_command import HardenedHelmCommand, helm_environment
from gate.render.helm_stage import is_remote_repository, stage_chart


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def chart_yaml(name: str, version: str = "0.1.0", deps: list[dict[str, Any]] | None = None) -> str:
    meta: dict[str, Any] = {"apiVersion": "v2", "name": name, "version": version}
    if deps:
        meta["dependencies"] = deps
    return yaml.safe_dump(meta)


def make_chart(root: Path, name: str = "app", deps: list[dict[str, Any]] | None = None) -> Path:
    write(root / "Chart.yaml", chart_yaml(name, deps=deps))
    write(root / "values.yaml", "image: registry.example.com/acme/app:1.0\n")
    write(root / "templates" / "cm.yaml", "apiVersion: v1\nkind: ConfigMap\n")
    return root


def archive(name: str, version: str, marker: str = "", top: str | None = None) -> bytes:
    """A chart .tgz as helm packages it: every file under ``<name>/``."""
    files = {
        "Chart.yaml": chart_yaml(name, version),
        "templates/cm.yaml": f"# {marker}\napiVersion: v1\nkind: ConfigMap\n",
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top or name}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def verified(name: str, version: str, marker: str = "verified") -> VerifiedChart:
    data = archive(name, version, marker)
    return VerifiedChart(
        name=name,
        version=version,
        source=f"https://charts.example.com/{name}-{version}.tgz",
        archive=data,
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
    )


REDIS = {"name": "redis", "version": "1.2.3", "repository": "https://charts.example.com"}


# --- repositories -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repository", "remote"),
    [
        ("", False),
        ("file://../common", False),
        ("https://charts.example.com", True),
        ("http://charts.example.com", True),
        ("oci://registry.example.com/charts", True),
        ("@bitnami", True),
        ("alias:bitnami", True),
        ("stable", True),
    ],
)
def test_remote_repositories(repository: str, remote: bool) -> None:
    assert is_remote_repository(repository) is remote


# --- staging: dependencies ---------------------------------------------------------------


def test_plain_chart_is_copied_without_git(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    write(src / ".git" / "HEAD", "ref: refs/heads/main\n")
    staged = stage_chart(src, tmp_path / "work")
    assert (staged.chart_dir / "templates" / "cm.yaml").is_file()
    assert not (staged.chart_dir / ".git").exists()
    assert staged.inputs == ("Chart.yaml", "values.yaml")


@pytest.mark.parametrize("declared_in", ["Chart.yaml", "requirements.yaml"])
def test_remote_dependency_without_verified_chart_is_denied_even_when_vendored(
    tmp_path: Path, declared_in: str
) -> None:
    if declared_in == "Chart.yaml":
        src = make_chart(tmp_path / "src", deps=[REDIS])
    else:  # apiVersion v1 charts declare dependencies in requirements.yaml
        src = make_chart(tmp_path / "src")
        write(src / "Chart.yaml", "apiVersion: v1\nname: app\nversion: 0.1.0\n")
        write(src / "requirements.yaml", yaml.safe_dump({"dependencies": [REDIS]}))
    (src / "charts").mkdir()
    (src / "charts" / "redis-1.2.3.tgz").write_bytes(archive("redis", "1.2.3", "vendored"))
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "chart-unverified"
    assert "redis" in info.value.message and declared_in in info.value.message


def test_disabled_remote_dependency_still_needs_verification(tmp_path: Path) -> None:
    dep = {**REDIS, "condition": "redis.enabled"}
    src = make_chart(tmp_path / "src", deps=[dep])
    write(src / "values.yaml", "redis:\n  enabled: false\n")
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "chart-unverified"


@pytest.mark.parametrize(
    "vendored",
    [
        "redis-1.2.3.tgz",  # the usual name
        "zz-innocent.tgz",  # any name: helm matches the chart name inside
        "redis",  # an unpacked directory
    ],
)
def test_verified_chart_replaces_every_vendored_copy(tmp_path: Path, vendored: str) -> None:
    src = make_chart(tmp_path / "src", deps=[REDIS])
    charts = src / "charts"
    if vendored.endswith(".tgz"):
        write(charts / "keep.txt", "not a chart\n")
        (charts / vendored).write_bytes(archive("redis", "1.2.3", "tampered"))
    else:
        make_chart(charts / vendored, name="redis")
    chart = verified("redis", "1.2.3")
    staged = stage_chart(src, tmp_path / "work", charts=(chart,))
    entries = sorted(p.name for p in (staged.chart_dir / "charts").iterdir())
    assert entries == sorted(["redis-1.2.3.tgz"] + (["keep.txt"] if "tgz" in vendored else []))
    assert (staged.chart_dir / "charts" / "redis-1.2.3.tgz").read_bytes() == chart.archive
    # The source itself is untouched.
    assert (charts / vendored).exists()


def test_local_subchart_with_another_name_is_kept(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src", deps=[REDIS])
    (src / "charts").mkdir()
    (src / "charts" / "lib-0.1.0.tgz").write_bytes(archive("lib", "0.1.0"))
    staged = stage_chart(src, tmp_path / "work", charts=(verified("redis", "1.2.3"),))
    names = sorted(p.name for p in (staged.chart_dir / "charts").iterdir())
    assert names == ["lib-0.1.0.tgz", "redis-1.2.3.tgz"]


def test_verified_chart_with_other_bytes_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src", deps=[REDIS])
    good = verified("redis", "1.2.3")
    bad = VerifiedChart(good.name, good.version, good.source, good.archive + b"x", good.digest)
    with pytest.raises(DigestMismatchError):
        stage_chart(src, tmp_path / "work", charts=(bad,))


def test_verified_chart_with_unusable_name_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src", deps=[{**REDIS, "name": "../redis"}])
    data = archive("redis", "1.2.3")
    chart = VerifiedChart(
        "../redis", "1.2.3", "x", data, "sha256:" + hashlib.sha256(data).hexdigest()
    )
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work", charts=(chart,))
    assert info.value.reason == "invalid-chart"


def test_unverified_charts_are_not_added(tmp_path: Path) -> None:
    """A verified chart no dependency asks for would render as an extra subchart."""
    src = make_chart(tmp_path / "src")
    staged = stage_chart(src, tmp_path / "work", charts=(verified("redis", "1.2.3"),))
    assert not (staged.chart_dir / "charts").exists()


def test_exact_version_is_preferred(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src", deps=[REDIS])
    staged = stage_chart(
        src, tmp_path / "work", charts=(verified("redis", "1.2.3"), verified("redis", "2.0.0"))
    )
    assert sorted(p.name for p in (staged.chart_dir / "charts").iterdir()) == ["redis-1.2.3.tgz"]


def test_remote_dependency_of_a_local_subchart_directory(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    sub = make_chart(src / "charts" / "backend", name="backend", deps=[REDIS])
    (sub / "charts").mkdir()
    (sub / "charts" / "redis-1.2.3.tgz").write_bytes(archive("redis", "1.2.3", "tampered"))
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "chart-unverified"
    assert "charts/backend/Chart.yaml" in info.value.message
    chart = verified("redis", "1.2.3")
    staged = stage_chart(src, tmp_path / "work2", charts=(chart,))
    nested = staged.chart_dir / "charts" / "backend" / "charts" / "redis-1.2.3.tgz"
    assert nested.read_bytes() == chart.archive


def test_vendored_archive_with_remote_dependency_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel, data in {
            "backend/Chart.yaml": chart_yaml("backend", deps=[REDIS]).encode(),
            "backend/charts/redis-1.2.3.tgz": archive("redis", "1.2.3", "tampered"),
        }.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (src / "charts").mkdir()
    (src / "charts" / "backend-0.1.0.tgz").write_bytes(buf.getvalue())
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work", charts=(verified("redis", "1.2.3"),))
    assert info.value.reason == "chart-unverified"
    assert "backend-0.1.0.tgz" in info.value.message


def test_vendored_archive_that_is_not_an_archive(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src", deps=[REDIS])
    write(src / "charts" / "other.tgz", "plain text\n")
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work", charts=(verified("redis", "1.2.3"),))
    assert info.value.reason == "chart-unreadable"


# --- staging: file:// dependencies -------------------------------------------------


def test_file_dependency_inside_the_source_is_staged(tmp_path: Path) -> None:
    src = make_chart(
        tmp_path / "src",
        deps=[{"name": "common", "version": "0.1.0", "repository": "file://libs/common"}],
    )
    make_chart(src / "libs" / "common", name="common")
    write(src / "charts" / "common" / "Chart.yaml", chart_yaml("common"))  # stale vendored copy
    staged = stage_chart(src, tmp_path / "work")
    copied = staged.chart_dir / "charts" / "common"
    assert (copied / "templates" / "cm.yaml").is_file()


def test_file_dependency_outside_the_source_is_denied(tmp_path: Path) -> None:
    make_chart(tmp_path / "common", name="common")
    src = make_chart(
        tmp_path / "src",
        deps=[{"name": "common", "version": "0.1.0", "repository": "file://../common"}],
    )
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "dependency-outside-source"


# --- staging: symlinks and files ------------------------------------------------------


def test_symlink_out_of_the_source_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    secret = write(tmp_path / "secret.txt", "token\n")
    os.symlink(secret, src / "files.txt")
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "symlink-escape"


def test_symlinks_inside_are_dereferenced(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    write(src / "shared" / "config.txt", "x\n")
    os.symlink("shared", src / "alias")
    os.symlink("shared/config.txt", src / "config.txt")
    staged = stage_chart(src, tmp_path / "work")
    for rel in ("alias/config.txt", "config.txt"):
        path = staged.chart_dir / rel
        assert not path.is_symlink() and path.read_text() == "x\n"
    assert not (staged.chart_dir / "alias").is_symlink()


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    os.symlink("..", src / "templates" / "up")
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "symlink-loop"


def test_fifo_is_refused(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    os.mkfifo(src / "templates" / "pipe.yaml")
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "not-a-regular-file"


# --- values files ----------------------------------------------------------------------


def test_values_files_are_staged_in_order(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    a = write(src / "env" / "a,b.yaml", "a: 1\n")
    b = write(src / "values-prod.yaml", "b: 2\n")
    staged = stage_chart(src, tmp_path / "work", values_files=(a, b))
    assert [p.read_text() for p in staged.values_files] == ["a: 1\n", "b: 2\n"]
    assert all("," not in str(p) for p in staged.values_files)
    assert "env/a,b.yaml" in staged.inputs and "values-prod.yaml" in staged.inputs


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink"])
def test_values_outside_the_source_are_denied(tmp_path: Path, where: str) -> None:
    src = make_chart(tmp_path / "src")
    outside = write(tmp_path / "outside.yaml", "image: evil\n")
    if where == "dotdot":
        given = src / ".." / "outside.yaml"
    elif where == "absolute":
        given = src / outside  # what `source_dir / "/abs/path"` gives: the absolute path
    else:
        os.symlink(outside, src / "values-link.yaml")
        given = src / "values-link.yaml"
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work", values_files=(given,))
    assert info.value.reason == "values-outside-source"


def test_missing_values_file(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    with pytest.raises(RenderError) as info:
        stage_chart(src, tmp_path / "work", values_files=(src / "nope.yaml",))
    assert info.value.reason == "values-missing"


# --- argv and request checks ------------------------------------------------------------


def test_template_argv() -> None:
    request = RenderRequest(
        source_dir=Path("/src"),
        kube_version="1.35.0",
        api_versions=("monitoring.coreos.com/v1", "batch/v1/CronJob"),
        namespace="prod",
        release_name="web",
    )
    argv = template_argv(request, Path("/stage/chart"), (Path("/v/values-0.yaml"),))
    assert argv == [
        "template",
        "--namespace=prod",
        "--kube-version=1.35.0",
        "--api-versions=monitoring.coreos.com/v1",
        "--api-versions=batch/v1/CronJob",
        "--values=/v/values-0.yaml",
        "--include-crds",
        "--skip-schema-validation",
        "--",
        "web",
        "/stage/chart",
    ]
    assert not any(
        a.startswith(("--dry-run", "--validate", "--repo", "--enable-dns")) for a in argv
    )


@pytest.mark.parametrize(
    "field",
    [
        {"release_name": "--post-renderer=x"},
        {"release_name": "a" * 54},
        {"namespace": "Prod_1"},
        {"kube_version": "--debug"},
        {"api_versions": ("a/v1,b/v1",)},
    ],
)
def test_invalid_request_fields(tmp_path: Path, field: dict[str, Any]) -> None:
    src = make_chart(tmp_path / "src")
    with pytest.raises(UsageError):
        HelmRenderer(helm="/nonexistent/helm").render(RenderRequest(source_dir=src, **field))


def test_helm_missing_is_renderer_unavailable(tmp_path: Path) -> None:
    src = make_chart(tmp_path / "src")
    with pytest.raises(RenderError) as info:
        HelmRenderer(helm=str(tmp_path / "no-helm")).render(RenderRequest(source_dir=src))
    assert info.value.reason == "renderer-unavailable"


# --- the hardened pyhelm3 Command ---------------------------------------------------


def _env_command(tmp_path: Path, **kw: Any) -> HardenedHelmCommand:
    """The Command with /usr/bin/env as "helm": it prints the environment helm would get."""
    env = shutil.which("env")
    assert env is not None
    defaults: dict[str, Any] = {
        "executable": env,
        "home": tmp_path / "home",
        "cwd": tmp_path,
        "timeout_s": 30,
        "max_output_bytes": 1 << 20,
    }
    defaults.update(kw)
    return HardenedHelmCommand(**defaults)


def test_command_runs_with_a_clean_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HELM_NAMESPACE", "leaked")
    monkeypatch.setenv("HELM_REPOSITORY_CONFIG", "/leaked/repositories.yaml")
    monkeypatch.setenv("KUBECONFIG", "/leaked/kubeconfig")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leaked")
    monkeypatch.setenv("HTTPS_PROXY", "http://leaked:3128")
    out = run_sync(lambda: _env_command(tmp_path).run([]))
    env = dict(line.split("=", 1) for line in out.decode().splitlines())
    assert "leaked" not in out.decode()
    home = str(tmp_path / "home")
    assert env["HOME"] == home and env["LANG"] == "C"
    for key in (
        "HELM_CACHE_HOME",
        "HELM_CONFIG_HOME",
        "HELM_DATA_HOME",
        "HELM_PLUGINS",
        "HELM_REGISTRY_CONFIG",
        "HELM_REPOSITORY_CONFIG",
        "HELM_REPOSITORY_CACHE",
        "KUBECONFIG",
    ):
        assert env[key].startswith(home + "/"), key
    assert not Path(env["KUBECONFIG"]).exists()
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://127.0.0.1:9"
    assert set(env) == {"PATH", "LANG"} | set(helm_environment(tmp_path / "home"))


def test_command_refuses_stdin(tmp_path: Path) -> None:
    """pyhelm3's own ``template`` sends values on stdin: with stdin closed it cannot run."""
    command = _env_command(tmp_path)
    with pytest.raises(TypeError, match="stdin"):
        run_sync(lambda: command.template("rel", "chart", {"a": 1}))


def test_command_uses_exec_not_a_shell(tmp_path: Path) -> None:
    out = run_sync(lambda: _env_command(tmp_path).run(["X=$(id)", "sh", "-c", "echo $X"]))
    assert out.strip() == b"$(id)"


def test_command_time_limit_and_output_cap(tmp_path: Path) -> None:
    slow = _env_command(tmp_path, timeout_s=0.5)
    with pytest.raises(RenderError) as info:
        run_sync(lambda: slow.run([sys.executable, "-c", "import time; time.sleep(60)"]))
    assert info.value.reason == "render-timeout"
    loud = _env_command(tmp_path, max_output_bytes=1000)
    with pytest.raises(SizeLimitError) as size:
        run_sync(lambda: loud.run([sys.executable, "-c", "print('x' * 100000)"]))
    assert size.value.reason == "size-limit"


def test_run_sync_inside_a_running_loop(tmp_path: Path) -> None:
    async def inside() -> bytes:
        return run_sync(lambda: _env_command(tmp_path).run(["true"]))

    assert asyncio.run(inside()) == b""


def test_pyhelm3_splits_disable_openapi_validation(tmp_path: Path) -> None:
    """The known pyhelm3 0.5.8 bug the ADR cites: ``extend`` of a string."""
    seen: list[list[str]] = []

    class Recording(HardenedHelmCommand):
        async def run(self, command: Any, input: bytes | None = None) -> bytes:
            seen.append([str(c) for c in command])
            return b"{}"

    command = Recording(
        executable="helm", home=tmp_path, cwd=tmp_path, timeout_s=1, max_output_bytes=1
    )
    # Parsing "{}" as a release fails afterwards; the argv is what matters.
    with contextlib.suppress(Exception):
        run_sync(lambda: command.install_or_upgrade("rel", "chart", disable_validation=True))
    assert seen and "--disable-openapi-validation" not in seen[0]
    assert "-" in seen[0] and "d" in seen[0]
