"""Renderers and the contained tool runner."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from gate.errors import GateError, ManifestError, RenderError, SizeLimitError, SourceError
from gate.render import (
    HelmRenderer,
    KustomizeRenderer,
    PlainRenderer,
    RenderRequest,
    select_renderer,
)
from gate.render.kustomize import check_no_remote_bases, is_remote
from gate.render.process import run_tool

PY = sys.executable


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cm(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\n"


# --- selection --------------------------------------------------------------


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_select_kustomize(tmp_path: Path, name: str) -> None:
    write(tmp_path / name, "resources: []\n")
    write(tmp_path / "Chart.yaml", "name: c\n")  # kustomize wins over a chart
    assert isinstance(select_renderer(tmp_path), KustomizeRenderer)


def test_select_helm_and_plain(tmp_path: Path) -> None:
    assert isinstance(select_renderer(tmp_path), PlainRenderer)
    write(tmp_path / "Chart.yaml", "apiVersion: v2\nname: c\nversion: 1.0.0\n")
    renderer = select_renderer(tmp_path)
    assert isinstance(renderer, HelmRenderer) and renderer.name == "helm"
    # A values file that does not exist is refused before helm runs.
    with pytest.raises(GateError) as info:
        renderer.render(RenderRequest(tmp_path, values_files=(tmp_path / "v.yaml",)))
    assert info.value.reason == "values-missing"


def test_select_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        select_renderer(tmp_path / "nope")


def test_request_defaults(tmp_path: Path) -> None:
    request = RenderRequest(tmp_path)
    assert request.release_name == "release" and request.namespace is None
    assert request.timeout_s == 60 and request.max_output_bytes == 32 * 1024 * 1024


# --- plain ------------------------------------------------------------------


def test_plain_recursive_sorted_multidoc(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", cm("b1") + "---\n" + cm("b2"))
    write(tmp_path / "a.yml", cm("a"))
    write(tmp_path / "sub" / "deep" / "c.json", '{"apiVersion": "v1", "kind": "Secret"}')
    write(tmp_path / "sub" / "z.yaml", "---\n" + cm("z") + "---\n")
    write(tmp_path / "README.md", "not: yaml: at all: [")
    write(tmp_path / ".git" / "config.yaml", cm("hidden-dir"))
    write(tmp_path / "sub" / ".ci" / "x.yaml", cm("hidden-nested"))
    write(tmp_path / ".pre-commit-config.yaml", "repos: []\n")
    rendered = PlainRenderer().render(RenderRequest(tmp_path))
    assert rendered.renderer == "plain"
    assert rendered.files == ("a.yml", "b.yaml", "sub/deep/c.json", "sub/z.yaml")
    names = [d.get("metadata", {}).get("name", d["kind"]) for d in rendered.documents]
    assert names == ["a", "b1", "b2", "Secret", "z"]


def test_plain_errors_name_the_file(tmp_path: Path) -> None:
    write(tmp_path / "ok.yaml", cm("ok"))
    write(tmp_path / "bad" / "dup.yaml", "kind: A\nkind: B\n")
    with pytest.raises(ManifestError) as info:
        PlainRenderer().render(RenderRequest(tmp_path))
    assert info.value.reason == "duplicate-key" and "bad/dup.yaml" in info.value.message


def test_plain_symlink_escape_denied(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "secret.yaml", cm("stolen"))
    src = tmp_path / "src"
    write(src / "ok.yaml", cm("ok"))
    (src / "link.yaml").symlink_to(outside)
    with pytest.raises(ManifestError) as info:
        PlainRenderer().render(RenderRequest(src))
    assert info.value.reason == "symlink-escape"


def test_plain_symlinked_dir_escape_denied(tmp_path: Path) -> None:
    write(tmp_path / "outside" / "secret.yaml", cm("stolen"))
    src = tmp_path / "src"
    write(src / "ok.yaml", cm("ok"))
    (src / "etc").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(ManifestError) as info:
        PlainRenderer().render(RenderRequest(src))
    assert info.value.reason == "symlink-escape"


def test_plain_symlink_inside_is_fine(tmp_path: Path) -> None:
    write(tmp_path / "real" / "a.yaml", cm("a"))
    (tmp_path / "alias.yaml").symlink_to(tmp_path / "real" / "a.yaml")
    rendered = PlainRenderer().render(RenderRequest(tmp_path))
    assert rendered.files == ("alias.yaml", "real/a.yaml")
    assert len(rendered.documents) == 2


def test_plain_fifo_is_refused_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ManifestError) as info:
        PlainRenderer().render(RenderRequest(tmp_path))
    assert info.value.reason == "not-a-regular-file"


def test_plain_size_cap(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", cm("a") + "data: {x: '" + "y" * 600 + "'}\n")
    write(tmp_path / "b.yaml", cm("b") + "data: {x: '" + "y" * 600 + "'}\n")
    with pytest.raises(SizeLimitError):
        PlainRenderer().render(RenderRequest(tmp_path, max_output_bytes=1000))


def test_plain_empty_dir(tmp_path: Path) -> None:
    assert PlainRenderer().render(RenderRequest(tmp_path)).documents == []


# --- the tool runner --------------------------------------------------------


def test_run_tool_returns_stdout(tmp_path: Path) -> None:
    out = run_tool(
        [PY, "-c", "import sys; sys.stdout.write('hello')"],
        cwd=tmp_path,
        timeout_s=10,
        max_output_bytes=100,
    )
    assert out == b"hello"


def test_run_tool_clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_TEST_CANARY_TOKEN", "s3cr3t")
    monkeypatch.setenv("KUBECONFIG", "/home/me/.kube/config")
    script = "import os, json, sys; sys.stdout.write(json.dumps(dict(os.environ)))"
    out = run_tool(
        [PY, "-c", script],
        cwd=tmp_path,
        timeout_s=10,
        max_output_bytes=100_000,
        env_extra={"EXTRA": "1"},
    )
    import json

    env = json.loads(out)
    assert "GATE_TEST_CANARY_TOKEN" not in env and "KUBECONFIG" not in env
    assert env["LANG"] == "C" and env["EXTRA"] == "1"
    assert env["HOME"] != os.environ.get("HOME")
    assert not Path(env["HOME"]).exists()  # the throw-away home is removed
    allowed = {"PATH", "HOME", "LANG", "EXTRA", "LC_CTYPE"}  # LC_CTYPE: Python's C locale coercion
    assert set(env) <= allowed


def test_run_tool_stdin_is_closed(tmp_path: Path) -> None:
    out = run_tool(
        [PY, "-c", "import sys; sys.stdout.write(repr(sys.stdin.read()))"],
        cwd=tmp_path,
        timeout_s=10,
        max_output_bytes=100,
    )
    assert out == b"''"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_run_tool_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The tool starts a grandchild (like a plugin) and then hangs.
    script = (
        "import subprocess, sys, time;"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid));"
        "time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(RenderError) as info:
        run_tool([PY, "-c", script], cwd=tmp_path, timeout_s=1.0, max_output_bytes=100)
    assert info.value.reason == "render-timeout"
    assert time.monotonic() - started < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_run_tool_straggler_after_exit_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # The tool exits at once, leaving a background process holding stdout.
    script = (
        "import subprocess, sys;"
        f"p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']);"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid));"
        "sys.stdout.write('done')"
    )
    started = time.monotonic()
    out = run_tool([PY, "-c", script], cwd=tmp_path, timeout_s=10, max_output_bytes=100)
    assert out == b"done" and time.monotonic() - started < 5
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_run_tool_output_cap(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(SizeLimitError):
        run_tool(
            [PY, "-c", "import sys\nwhile True: sys.stdout.write('x' * 65536)"],
            cwd=tmp_path,
            timeout_s=20,
            max_output_bytes=1024 * 1024,
        )
    assert time.monotonic() - started < 5


def test_run_tool_failure_carries_sanitised_stderr(tmp_path: Path) -> None:
    script = (
        "import sys; sys.stderr.write('noise\\n' * 5000 + 'Error: bad \\x1b[31mthing\\n'); "
        "sys.exit(3)"
    )
    with pytest.raises(RenderError) as info:
        run_tool([PY, "-c", script], cwd=tmp_path, timeout_s=10, max_output_bytes=100)
    err = info.value
    assert err.reason == "render-failed"
    assert "status 3" in err.message and "Error: bad" in err.message
    assert "\x1b" not in err.message
    assert len(err.message) < 2200


def test_run_tool_missing_binary(tmp_path: Path) -> None:
    with pytest.raises(RenderError) as info:
        run_tool([str(tmp_path / "no-such-tool")], cwd=tmp_path, timeout_s=5, max_output_bytes=10)
    assert info.value.reason == "renderer-unavailable"


def test_run_tool_no_shell(tmp_path: Path) -> None:
    out = run_tool(
        [PY, "-c", "import sys; sys.stdout.write(sys.argv[1])", "$(touch pwned); `id`"],
        cwd=tmp_path,
        timeout_s=5,
        max_output_bytes=100,
    )
    assert out == b"$(touch pwned); `id`" and not (tmp_path / "pwned").exists()


# --- kustomize: the static check (no tool needed) ---------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "https://github.com/acme/app//base?ref=v1",
        "http://example.com/base.yaml",
        "github.com/acme/app/base?ref=main",
        "github.com/acme/app",
        "git::https://example.com/repo.git",
        "git@github.com:acme/app.git//base",
        "ssh://git@example.com/acme/app.git",
        "file:///etc/kubernetes",
        "gh:acme/app",
        "example.com/acme/app//base?ref=v1",
        "gitlab.com/acme/app/base",
        "HTTPS://EXAMPLE.COM/x.yaml",
    ],
)
def test_remote_references(ref: str) -> None:
    assert is_remote(ref)


@pytest.mark.parametrize(
    "ref", ["../base", "deployment.yaml", "./overlays/prod", "../../common/github.com-mirror"]
)
def test_local_references(ref: str) -> None:
    assert not is_remote(ref)


@pytest.mark.parametrize(
    "kustomization",
    [
        "resources:\n- https://github.com/acme/app//base?ref=v1\n",
        "bases:\n- github.com/acme/app/base\n",
        "components:\n- git::https://example.com/c.git\n",
        "patches:\n- path: https://example.com/patch.yaml\n",
        "patchesStrategicMerge:\n- https://example.com/p.yaml\n",
        "configMapGenerator:\n- name: c\n  files: [key=https://example.com/f]\n",
        "openapi: {path: https://example.com/schema.json}\n",
        "crds: [https://example.com/crd.yaml]\n",
        "transformers: [https://example.com/t.yaml]\n",
    ],
)
def test_remote_base_refused_before_running(tmp_path: Path, kustomization: str) -> None:
    write(tmp_path / "kustomization.yaml", kustomization)
    # A tool that would fail loudly if it were ever run.
    with pytest.raises(ManifestError) as info:
        KustomizeRenderer(tool=tmp_path / "must-not-run").render(RenderRequest(tmp_path))
    assert info.value.reason == "remote-base"


def test_remote_base_in_a_local_base_outside_the_source(tmp_path: Path) -> None:
    write(tmp_path / "base" / "kustomization.yaml", "resources: [github.com/acme/app]\n")
    write(tmp_path / "app" / "kustomization.yaml", "resources: [../base]\n")
    with pytest.raises(ManifestError) as info:
        check_no_remote_bases(tmp_path / "app")
    assert info.value.reason == "remote-base" and "../base" in info.value.message


def test_remote_base_in_unreferenced_kustomization_under_source(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", "resources: []\n")
    write(tmp_path / "other" / "kustomization.yml", "resources: [https://x.example/a.yaml]\n")
    with pytest.raises(ManifestError):
        check_no_remote_bases(tmp_path)


def test_inline_patches_may_contain_urls(tmp_path: Path) -> None:
    write(
        tmp_path / "kustomization.yaml",
        "resources: [../base]\npatches:\n- patch: |\n    metadata:\n      annotations:\n"
        "        docs: https://example.com/docs\n",
    )
    write(tmp_path.parent / "base" / "kustomization.yaml", "resources: [cm.yaml]\n")
    files = check_no_remote_bases(tmp_path)
    assert files == ("../base/kustomization.yaml", "kustomization.yaml")


def test_kustomization_is_read_strictly(tmp_path: Path) -> None:
    write(tmp_path / "kustomization.yaml", "resources: [a.yaml]\nresources: [b.yaml]\n")
    with pytest.raises(ManifestError) as info:
        check_no_remote_bases(tmp_path)
    assert info.value.reason == "duplicate-key"


def test_kustomize_runs_the_given_tool_contained(tmp_path: Path) -> None:
    """A fake kubectl: checks the argv and the environment it is given."""
    write(tmp_path / "src" / "kustomization.yaml", "resources: [cm.yaml]\n")
    fake = write(
        tmp_path / "bin" / "kubectl",
        f"#!{PY}\n"
        "import os, sys\n"
        "assert sys.argv[1:3] == ['kustomize', os.getcwd()], sys.argv\n"
        "assert sys.argv[3] == '--load-restrictor=LoadRestrictionsRootOnly'\n"
        "assert os.environ['GIT_ALLOW_PROTOCOL'] == 'none'\n"
        "assert 'GATE_TEST_CANARY_TOKEN' not in os.environ\n"
        "print('apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: c}\\n---\\n"
        "apiVersion: v1\\nkind: List\\nitems: [{kind: Secret}]')\n",
    )
    fake.chmod(0o755)
    os.environ["GATE_TEST_CANARY_TOKEN"] = "x"
    try:
        rendered = KustomizeRenderer(tool=fake).render(RenderRequest(tmp_path / "src"))
    finally:
        del os.environ["GATE_TEST_CANARY_TOKEN"]
    assert rendered.renderer == "kustomize" and rendered.files == ("kustomization.yaml",)
    assert [d["kind"] for d in rendered.documents] == ["ConfigMap", "Secret"]


def test_kustomize_output_is_parsed_strictly(tmp_path: Path) -> None:
    write(tmp_path / "src" / "kustomization.yaml", "resources: []\n")
    fake = write(tmp_path / "bin" / "kubectl", f"#!{PY}\nprint('kind: Pod\\nkind: Pod\\n')\n")
    fake.chmod(0o755)
    with pytest.raises(ManifestError) as info:
        KustomizeRenderer(tool=fake).render(RenderRequest(tmp_path / "src"))
    assert info.value.reason == "duplicate-key"
