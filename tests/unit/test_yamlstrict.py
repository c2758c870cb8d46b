"""Strict YAML: every way two parsers could disagree is refused, not resolved."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import yaml

import gate.yamlstrict
from gate.errors import ManifestError, SizeLimitError
from gate.yamlstrict import dump_all, load_all, load_json


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the libyaml parser and with the pure-Python fallback."""
    if request.param == "python":
        monkeypatch.setattr(gate.yamlstrict, "_StrictLoader", gate.yamlstrict._PyStrictLoader)
    elif not gate.yamlstrict._HAVE_LIBYAML:
        pytest.skip("PyYAML without libyaml")
    return str(request.param)


def test_libyaml_is_used_when_available() -> None:
    if yaml.__with_libyaml__:
        assert gate.yamlstrict._HAVE_LIBYAML


BILLION_LAUGHS = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: lol}
data:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def reason_of(data: str | bytes) -> str:
    with pytest.raises(ManifestError) as info:
        load_all(data, source="app/deploy.yaml")
    return info.value.reason


# --- duplicate keys ---------------------------------------------------------


def test_duplicate_image_key_names_file_line_and_key() -> None:
    doc = """\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - name: app
    image: registry.example.com/acme/app:1.0
    image: evil.example.com/miner:latest
"""
    with pytest.raises(ManifestError) as info:
        load_all(doc, source="app/pod.yaml")
    err = info.value
    assert err.reason == "duplicate-key"
    assert "app/pod.yaml" in err.message
    assert "line 8" in err.message and "'image'" in err.message
    assert "first at line 7" in err.message


def test_duplicate_top_level_and_nested_keys() -> None:
    assert reason_of("kind: Pod\nkind: Deployment\n") == "duplicate-key"
    assert reason_of("a:\n  b:\n    c: 1\n    c: 2\n") == "duplicate-key"
    assert reason_of("a: [{x: 1, x: 1}]") == "duplicate-key"  # even with equal values


@pytest.mark.parametrize(
    "doc",
    [
        "1: a\n'1': b\n",  # Kubernetes turns both into the key "1"
        "yes: a\ntrue: b\n",  # same value, different spelling
        "0x10: a\n16: b\n",
        "null: a\n~: b\n",
    ],
)
def test_keys_equal_by_value_or_spelling_are_duplicates(doc: str) -> None:
    assert reason_of(doc) == "duplicate-key"


def test_duplicate_in_second_document() -> None:
    assert reason_of("kind: A\n---\nkind: B\nkind: C\n") == "duplicate-key"


# --- merge keys -------------------------------------------------------------


def test_merge_keys_follow_yaml_1_1_precedence() -> None:
    doc = """\
defaults: &defaults {image: base:1, pullPolicy: Always}
other: &other {image: other:1, extra: x}
container:
  <<: [*defaults, *other]
  pullPolicy: IfNotPresent
"""
    (out,) = load_all(doc, source="m.yaml")
    # explicit key wins over merged; the first merge source wins over later ones
    assert out["container"] == {"image": "base:1", "pullPolicy": "IfNotPresent", "extra": "x"}


def test_two_merge_keys_or_duplicate_explicit_key_with_merge() -> None:
    assert reason_of("a: &a {x: 1}\nb: {<<: *a, <<: *a}\n") == "duplicate-key"
    assert reason_of("a: &a {x: 1}\nb: {<<: *a, y: 1, y: 2}\n") == "duplicate-key"
    assert reason_of("b: {<<: [1, 2]}\n") == "invalid-yaml"


def test_merged_and_aliased_values_are_not_shared() -> None:
    doc = "a: &c {image: x}\nb: *c\nd: {<<: *c}\n"
    (out,) = load_all(doc, source="s.yaml")
    out["a"]["image"] = "changed"
    assert out["b"]["image"] == "x" and out["d"]["image"] == "x"


# --- aliases ----------------------------------------------------------------


def test_billion_laughs_fails_fast_and_small() -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        assert reason_of(BILLION_LAUGHS) == "alias-limit"
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5 * 1024 * 1024


def test_recursive_alias_and_too_many_aliases() -> None:
    assert reason_of("a: &a [*a]\n") == "alias-limit"
    many = "x: &x {a: 1}\nl: [" + ", ".join(["*x"] * 1001) + "]\n"
    assert reason_of(many) == "alias-limit"


def test_modest_alias_use_is_fine() -> None:
    doc = "r: &r {cpu: 100m}\na: {resources: *r}\nb: {resources: *r}\n"
    (out,) = load_all(doc, source="ok.yaml")
    assert out["a"] == out["b"] == {"resources": {"cpu": "100m"}}


# --- types and tags ---------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: !!binary aGVsbG8=\n",
        "a: !!set {x}\n",
        "a: !!timestamp 2024-01-01\n",
        "a: !Ref something\n",
        "!!python/none '': x\n",
    ],
)
def test_non_plain_tags_are_refused(doc: str) -> None:
    assert reason_of(doc) == "unsupported-tag"


def test_scalars_resolve_like_kubernetes() -> None:
    (out,) = load_all(
        "d: 2024-01-01\nt: 2001-12-14t21:59:43.10-05:00\nb: true\ny: yes\ni: 10\nf: 1.5\n"
        "n: null\nq: '10'\nv: =\n",
        source="t.yaml",
    )
    assert out == {
        "d": "2024-01-01",  # no implicit timestamps: strings, as in Kubernetes
        "t": "2001-12-14t21:59:43.10-05:00",
        "b": True,
        "y": True,
        "i": 10,
        "f": 1.5,
        "n": None,
        "q": "10",
        "v": "=",
    }


def test_non_scalar_key_is_refused() -> None:
    assert reason_of("? [a, b]\n: x\n") == "invalid-yaml"


# --- documents --------------------------------------------------------------


def test_empty_and_null_documents_are_skipped() -> None:
    docs = load_all("---\n---\nnull\n---\n~\n---\nkind: A\n---\n", source="e.yaml")
    assert docs == [{"kind": "A"}]
    assert load_all("", source="empty.yaml") == []
    assert load_all("# just a comment\n", source="c.yaml") == []


@pytest.mark.parametrize("doc", ["- a\n- b\n", "just a string\n", "42\n"])
def test_non_mapping_document_is_refused(doc: str) -> None:
    assert reason_of("kind: A\n---\n" + doc) == "not-an-object"


def test_lists_are_flattened_recursively() -> None:
    doc = """\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
- apiVersion: v1
  kind: DeploymentList
  items:
  - {apiVersion: apps/v1, kind: Deployment, metadata: {name: b}}
---
apiVersion: v1
kind: Service
metadata: {name: c}
"""
    docs = load_all(doc, source="l.yaml")
    assert [d["metadata"]["name"] for d in docs] == ["a", "b", "c"]


def test_list_with_non_object_item_or_bad_items() -> None:
    assert reason_of("kind: List\nitems: [1]\n") == "not-an-object"
    assert reason_of("kind: List\nitems: {a: 1}\n") == "not-an-object"
    assert load_all("kind: List\nitems: []\n", source="x") == []


def test_size_cap() -> None:
    with pytest.raises(SizeLimitError):
        load_all(b"a: " + b"x" * 2000, source="big.yaml", max_bytes=1000)


def test_depth_cap() -> None:
    deep = "a: " + "[" * 300 + "]" * 300 + "\n"
    assert reason_of(deep) == "depth-limit"


def test_syntax_error_is_a_manifest_error() -> None:
    assert reason_of("a: [unclosed\n") == "invalid-yaml"
    assert reason_of("a: *undefined\n") == "invalid-yaml"


def test_bytes_input_and_utf8() -> None:
    (out,) = load_all("name: caf\u00e9\n".encode(), source="u.yaml")
    assert out == {"name": "caf\u00e9"}


# --- JSON -------------------------------------------------------------------


def test_json_rules() -> None:
    assert load_json('{\n\t"kind": "A"}', source="a.json") == [{"kind": "A"}]
    with pytest.raises(ManifestError) as info:
        load_json('{"image": "a", "image": "b"}', source="d.json")
    assert info.value.reason == "duplicate-key"
    with pytest.raises(ManifestError) as info:
        load_json('{"a": NaN}', source="n.json")
    assert info.value.reason == "invalid-yaml"
    with pytest.raises(ManifestError) as info:
        load_json("[1]", source="l.json")
    assert info.value.reason == "not-an-object"
    items = load_json('{"kind": "List", "items": [{"kind": "A"}, {"kind": "B"}]}', source="l")
    assert items == [{"kind": "A"}, {"kind": "B"}]


# --- dumping ----------------------------------------------------------------

AMBIGUOUS = [
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "true",
    "null",
    "~",
    "",
    "10",
    "1.0",
    "1e3",
    "0o17",
    "0x1F",
    "1_000",
    "+1",
    ".5",
    "-.inf",
    ".NaN",
    "2024-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "12:30:00",
    "<<",
    "=",
]


def test_dump_round_trip_keeps_types_and_order() -> None:
    original = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"z": "1", "a": "2"}},
        "data": {f"k{i}": value for i, value in enumerate(AMBIGUOUS)},
        "numbers": [1, 1.5, True, None, -3],
        "script": "#!/bin/sh\necho hi\n",
        "unicode": "caf\u00e9",
    }
    text = dump_all([original, {"kind": "Second"}])
    assert text.startswith("---\n") and text.count("\n---\n") == 1
    assert "&" not in text and "*" not in text
    back = load_all(text, source="dump")
    assert back == [original, {"kind": "Second"}]
    assert list(back[0]) == list(original)
    assert list(back[0]["metadata"]["labels"]) == ["z", "a"]


@pytest.mark.parametrize("value", AMBIGUOUS)
def test_ambiguous_strings_are_quoted(value: str) -> None:
    text = dump_all([{"v": value}])
    line = text.splitlines()[1]
    assert line[3] in "'\"", line


def test_dump_never_writes_aliases_for_shared_objects() -> None:
    shared = {"cpu": "100m"}
    text = dump_all([{"a": shared, "b": shared}])
    assert "&" not in text and "*" not in text
    assert load_all(text, source="d") == [{"a": shared, "b": shared}]


@pytest.mark.parametrize(
    "value",
    [
        "a \nb",
        "\n",
        " leading\nx",
        "tab\t\nx",
        "x\r\ny",
        "trail\n\n\n",
        "x\n ",
        "\u2028x\ny",
        "# c\nx",
        "- a\n- b",
        "a: b\nc",
        "\x00\ny",
        "\ufeffx\ny",
        "---\n...",
        "x\u0085y\n",
    ],
)
def test_dump_round_trips_awkward_multiline_strings(value: str) -> None:
    doc = {"v": value, "k": {value: 1}}
    assert load_all(dump_all([doc]), source="d") == [doc]
