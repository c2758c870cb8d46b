"""The one chart-metadata reader (gate.render.chart_meta) and its two users.

The chart verifier (``gate.charts.read_dependencies``) and the renderer's stager
(``gate.render.helm_stage.stage_chart``) read the source chart through
``read_chart_tree``; every case here is refused by both, with the same reason.
Cases the red team listed as not fixed before the shared reader:

* a top-level ``Dependencies:`` (capital D) was refused by the stager only; the
  verifier read no dependencies at all;
* a ``Chart.yaml`` / ``requirements.yaml`` / ``Chart.lock`` symlinked out of the
  source was read by the verifier before the stager refused the symlink;
* the verifier stopped reading at 8 levels of subcharts (silently), the stager at 16.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.charts import HelmChartVerifier, read_dependencies
from gate.engine import Context, Findings, GateRequest, SourceInfo
from gate.errors import GateError, ManifestError, UsageError
from gate.render import RenderRequest
from gate.render.chart_meta import MAX_CHART_DEPTH, read_chart_tree
from gate.render.helm import HelmRenderer
from gate.render.helm_stage import stage_chart
from gate.report import Report
from tests.unit.helpers import make_policy

REDIS = {"name": "redis", "version": "1.2.3", "repository": "https://charts.example.com"}
SECRET = "s3cr3t-token-from-outside"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def chart_yaml(name: str, deps: list[dict[str, Any]] | None = None, **extra: Any) -> str:
    meta: dict[str, Any] = {"apiVersion": "v2", "name": name, "version": "0.1.0", **extra}
    if deps:
        meta["dependencies"] = deps
    return yaml.safe_dump(meta)


def tgz(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def both(src: Path, tmp_path: Path) -> tuple[GateError, GateError]:
    """The refusal of the verifier's reader and of the stager, for one source."""
    with pytest.raises(GateError) as verifier:
        read_dependencies(src)
    with pytest.raises(GateError) as stager:
        stage_chart(src, tmp_path / "work")
    return verifier.value, stager.value


def verify(src: Path) -> tuple[Report, tuple[Any, ...]]:
    policy = make_policy({"charts": [{"match": ["https://**"], "exempt": "test"}]})
    report = Report(
        policy_name=policy.name,
        policy_digest=policy.digest,
        source_path=str(src),
        revision=None,
        repo=None,
    )
    ctx = Context(policy, GateRequest(SourceInfo(src)), dt.datetime.now(dt.UTC), Findings(report))
    return report, tuple(HelmChartVerifier(deadline_s=1.0).verify_charts(ctx))


# --- key spellings ----------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Dependencies", "DEPENDENCIES", "dependencie\u017f"])
def test_dependencies_key_spelled_otherwise_is_refused_by_both(tmp_path: Path, key: str) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app") + yaml.safe_dump({key: [REDIS]}))
    verifier, stager = both(src.parent, tmp_path)
    assert verifier.reason == stager.reason == "invalid-chart"
    assert verifier.message == stager.message
    assert repr(key) in verifier.message


def test_verifier_fetches_nothing_for_a_refused_chart(tmp_path: Path) -> None:
    """Before: the verifier read no dependencies from ``Dependencies:`` and went on. Now it
    is refused by the shared reader; nothing is fetched (a 1 s deadline to an unroutable
    repository would show up as a finding) and the deny is the render step's, with the
    same reader's reason."""
    src = tmp_path / "src"
    write(src / "Chart.yaml", chart_yaml("app", [REDIS]) + yaml.safe_dump({"Dependencies": []}))
    report, charts = verify(src)
    assert charts == ()
    assert report.findings == []


@pytest.mark.parametrize("key", ["Name", "NAME", "Version", "Repository", "Alias"])
def test_dependency_entry_key_spelled_otherwise_is_refused(tmp_path: Path, key: str) -> None:
    entry = {"name": "redis", "version": "1.2.3", "repository": "https://charts.example.com"}
    entry = {(key if k == key.lower() else k): v for k, v in entry.items()}
    if key == "Alias":
        entry["Alias"] = "cache"
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app", [entry])).parent
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "invalid-chart"


def test_lock_key_spelled_otherwise_is_refused(tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app", [REDIS])).parent
    write(src / "Chart.lock", yaml.safe_dump({"dependencies": [{**REDIS, "Digest": "x"}]}))
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "invalid-chart"


def test_requirements_yaml_may_not_rename_the_chart(tmp_path: Path) -> None:
    """helm unmarshals requirements.yaml into the chart's metadata (helm 4, checked):
    ``name: demo`` there renames a vendored ``charts/aaa`` to ``demo``, a name the stager
    would not have matched against the verified ``demo`` archive."""
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    write(src / "charts" / "aaa" / "Chart.yaml", chart_yaml("aaa"))
    write(src / "charts" / "aaa" / "requirements.yaml", "name: demo\ndependencies: []\n")
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "invalid-chart"
    assert "name" in verifier.message


# --- symlinks leaving the source ------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Chart.yaml", "requirements.yaml", "Chart.lock", "requirements.lock"]
)
@pytest.mark.parametrize("where", ["top", "subchart"])
def test_symlinked_metadata_leaving_the_source_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, where: str
) -> None:
    outside = write(tmp_path / "outside" / "secret.yaml", f"{SECRET}: [\n")  # invalid YAML
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    chart = src if where == "top" else src / "charts" / "sub"
    if where == "subchart":
        write(chart / "Chart.yaml", chart_yaml("sub"))
    if (chart / name).exists():
        (chart / name).unlink()
    os.symlink(outside, chart / name)
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "symlink-escape"
    assert str(outside) not in opened
    for error in (verifier, stager):
        assert SECRET not in error.diagnostics()


def test_symlinked_metadata_inside_the_source_is_read(tmp_path: Path) -> None:
    src = tmp_path / "src"
    write(src / "meta" / "Chart.yaml", chart_yaml("app", [REDIS]))
    os.symlink("meta/Chart.yaml", src / "Chart.yaml")
    assert [d.name for d in read_dependencies(src)] == ["redis"]


def test_symlinked_subchart_containing_itself_is_a_loop(tmp_path: Path) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    (src / "charts").mkdir()
    os.symlink("..", src / "charts" / "up")
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "symlink-loop"


# --- one depth limit --------------------------------------------------------------------


def nest(src: Path, levels: int) -> Path:
    write(src / "Chart.yaml", chart_yaml("app"))
    deep = src
    for level in range(1, levels + 1):
        deep = deep / "charts" / f"l{level}"
        write(deep / "Chart.yaml", chart_yaml(f"l{level}"))
    return deep


def test_subcharts_at_the_limit_are_read_by_both(tmp_path: Path) -> None:
    deep = nest(tmp_path / "src", MAX_CHART_DEPTH)
    write(deep / "Chart.yaml", chart_yaml("deep", [REDIS]))
    assert [d.name for d in read_dependencies(tmp_path / "src")] == ["redis"]
    with pytest.raises(ManifestError) as info:  # found by the stager at the same depth
        stage_chart(tmp_path / "src", tmp_path / "work")
    assert info.value.reason == "chart-unverified"


@pytest.mark.parametrize("vendored", ["directory", "archive"])
def test_subchart_deeper_than_the_limit_is_refused_by_both(tmp_path: Path, vendored: str) -> None:
    """Before: the verifier stopped at 8 levels without a word, the stager at 16."""
    src = tmp_path / "src"
    if vendored == "directory":
        nest(src, MAX_CHART_DEPTH + 1)
    else:
        deep = nest(src, MAX_CHART_DEPTH)
        inner = tgz([("l9/Chart.yaml", chart_yaml("l9").encode())])
        write(deep / "charts" / "l9-0.1.0.tgz", inner)
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "invalid-chart"
    assert verifier.message == stager.message
    assert f"more than {MAX_CHART_DEPTH} levels" in verifier.message


# --- archives as helm names their entries ------------------------------------------------

DEP = chart_yaml("inner", [REDIS]).encode()


@pytest.mark.parametrize(
    "entries",
    [
        # helm: backslash is the separator when present, the first component dropped:
        # "a/b\\charts\\inner\\Chart.yaml" is charts/inner/Chart.yaml to helm.
        [("w/Chart.yaml", chart_yaml("w").encode()), ("a/b\\charts\\inner\\Chart.yaml", DEP)],
        [("w/Chart.yaml", chart_yaml("w").encode()), ("w/charts//inner/./Chart.yaml", DEP)],
    ],
)
def test_archive_entries_are_named_as_helm_names_them(
    tmp_path: Path, entries: list[tuple[str, bytes]]
) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    write(src / "charts" / "w-0.1.0.tgz", tgz(entries))
    tree = read_chart_tree(src)
    assert tree is not None
    (archive,) = tree.subcharts
    assert [(s.entry, s.node.name) for s in archive.node.subcharts] == [("inner", "inner")]
    with pytest.raises(ManifestError) as info:
        stage_chart(src, tmp_path / "work")
    assert info.value.reason == "chart-unverified"


@pytest.mark.parametrize(
    "entries",
    [
        [("w/Chart.yaml", b"apiVersion: v2\nname: w\nversion: 1.0.0\n")] * 2,
        [("w/Chart.yaml", chart_yaml("w").encode()), ("w/../../etc/passwd", b"x")],
        [("Chart.yaml", chart_yaml("w").encode())],
    ],
    ids=["repeated", "parent", "top-level"],
)
def test_archive_entries_helm_would_merge_or_refuse_are_refused_by_both(
    tmp_path: Path, entries: list[tuple[str, bytes]]
) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    write(src / "charts" / "w-0.1.0.tgz", tgz(entries))
    verifier, stager = both(src, tmp_path)
    assert verifier.reason == stager.reason == "chart-unreadable"


def test_staged_metadata_must_be_what_was_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stager decides on what the reader read; a source that changes in between is an
    error, not a chart rendered with metadata nobody checked."""
    from gate.render import helm_stage

    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    real_copy = helm_stage._copy_tree

    def swapping_copy(source: Path, dest: Path, *args: Any, **kwargs: Any) -> None:
        write(src / "Chart.yaml", chart_yaml("app", [REDIS]))
        real_copy(source, dest, *args, **kwargs)

    monkeypatch.setattr(helm_stage, "_copy_tree", swapping_copy)
    with pytest.raises(GateError) as info:
        stage_chart(src, tmp_path / "work")
    assert "changed while the chart was staged" in info.value.message


# --- helm request fields ---------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"release_name": "release\n"},
        {"namespace": "default\n"},
        {"kube_version": "1.35.0\n"},
        {"api_versions": ("apps/v1\n",)},
    ],
)
def test_trailing_newline_in_request_fields_is_a_usage_error(
    tmp_path: Path, field: dict[str, Any]
) -> None:
    src = write(tmp_path / "src" / "Chart.yaml", chart_yaml("app")).parent
    with pytest.raises(UsageError) as info:
        HelmRenderer(helm="/nonexistent/helm").render(RenderRequest(source_dir=src, **field))
    assert info.value.exit_code == 2
