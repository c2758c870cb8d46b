"""Image extraction finds every image (or fails loudly); pinning changes nothing else."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gate.errors import ManifestError
from gate.manifests import (
    ImageField,
    ImageOccurrence,
    extract_images,
    parse_field_path,
    pin_images,
    unclaimed_image_keys,
)
from gate.yamlstrict import load_all

UNSIGNED = "evil.example.com/miner:latest"


def pod_spec(*, init: str = "init:1", app: str = "app:1", eph: str = "debug:1") -> dict[str, Any]:
    return {
        "initContainers": [{"name": "init", "image": init}],
        "containers": [{"name": "app", "image": app}, {"name": "sidecar", "image": "side:1"}],
        "ephemeralContainers": [{"name": "dbg", "image": eph}],
    }


def obj(api_version: str, kind: str, spec: dict[str, Any], **meta: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "x", **meta},
        "spec": spec,
    }


def template(spec: dict[str, Any]) -> dict[str, Any]:
    return {"selector": {}, "template": {"metadata": {}, "spec": spec}}


WORKLOADS = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "ReplicationController"),
]


def refs(occurrences: list[ImageOccurrence]) -> set[str]:
    return {o.ref for o in occurrences}


# --- every kind -------------------------------------------------------------


def test_pod() -> None:
    found = extract_images([obj("v1", "Pod", pod_spec(eph=UNSIGNED), namespace="ns")])
    assert refs(found) == {"init:1", "app:1", "side:1", UNSIGNED}
    hidden = next(o for o in found if o.ref == UNSIGNED)
    assert hidden.path == ("spec", "ephemeralContainers", 0, "image")
    assert (hidden.kind, hidden.name, hidden.namespace, hidden.api_version) == (
        "Pod",
        "x",
        "ns",
        "v1",
    )


@pytest.mark.parametrize(("api_version", "kind"), WORKLOADS)
def test_workloads(api_version: str, kind: str) -> None:
    doc = obj(api_version, kind, template(pod_spec(init=UNSIGNED)))
    found = extract_images([doc])
    assert refs(found) == {UNSIGNED, "app:1", "side:1", "debug:1"}
    hidden = next(o for o in found if o.ref == UNSIGNED)
    assert hidden.path == ("spec", "template", "spec", "initContainers", 0, "image")
    assert hidden.kind == kind and hidden.namespace is None


def test_cronjob() -> None:
    spec = {"schedule": "* * * * *", "jobTemplate": {"spec": template(pod_spec(app=UNSIGNED))}}
    found = extract_images([obj("batch/v1", "CronJob", spec)])
    assert refs(found) == {"init:1", UNSIGNED, "side:1", "debug:1"}
    hidden = next(o for o in found if o.ref == UNSIGNED)
    assert hidden.path == (
        "spec",
        "jobTemplate",
        "spec",
        "template",
        "spec",
        "containers",
        0,
        "image",
    )


def test_pod_template_kind() -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": "t"},
        "template": {"spec": {"containers": [{"name": "a", "image": UNSIGNED}]}},
    }
    assert refs(extract_images([doc])) == {UNSIGNED}


def test_custom_resource_with_pod_template_any_kind() -> None:
    rollout = obj("argoproj.io/v1alpha1", "Rollout", template(pod_spec(init=UNSIGNED)))
    scaled_job = obj(
        "keda.sh/v1alpha1",
        "ScaledJob",
        {"jobTargetRef": {}, "jobTemplate": {"spec": template({"containers": [{"image": "j:1"}]})}},
    )
    found = extract_images([rollout, scaled_job])
    assert UNSIGNED in refs(found) and "j:1" in refs(found)
    assert {o.doc_index for o in found} == {0, 1}


def test_custom_resource_template_that_is_not_a_pod_spec_is_ignored() -> None:
    doc = obj("example.com/v1", "Thing", {"template": {"spec": "a string"}})
    assert extract_images([doc]) == []
    doc = obj("example.com/v1", "Thing", {"template": {"spec": {"replicas": 1}}})
    assert extract_images([doc]) == []


def test_objects_without_images() -> None:
    docs = load_all(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {image: not-a-field}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: []}\n",
        source="x",
    )
    assert extract_images(docs) == []


def test_containers_without_image_key_or_null_lists() -> None:
    spec = {"containers": [{"name": "a"}], "initContainers": None}
    assert extract_images([obj("v1", "Pod", spec)]) == []


# --- policy imageFields -----------------------------------------------------


def test_image_fields_for_a_knative_like_service_and_other_shapes() -> None:
    knative = obj(
        "serving.knative.dev/v1",
        "Service",
        {"template": {"spec": {"containers": [{"image": "kn:1"}]}}},
    )
    task = obj(
        "tekton.dev/v1",
        "Task",
        {"steps": [{"name": "a", "image": "step:1"}, {"name": "b", "image": UNSIGNED}]},
    )
    unrelated = obj("v1", "Service", {"steps": [{"image": "not-mine"}]})
    fields = [
        ImageField(
            "serving.knative.dev/v1", "Service", ("spec.template.spec.containers[*].image",)
        ),
        ImageField("tekton.dev/v1", "Task", ("spec.steps[*].image", "spec.sidecars[*].image")),
    ]
    found = extract_images([knative, task, unrelated], fields)
    assert refs(found) == {"kn:1", "step:1", UNSIGNED}
    # the generic pod-template rule and the policy path find the same place once
    assert len([o for o in found if o.ref == "kn:1"]) == 1
    assert next(o for o in found if o.ref == UNSIGNED).path == ("spec", "steps", 1, "image")
    # without the policy field, Tekton steps are invisible (but reported as unclaimed)
    without = extract_images([knative, task, unrelated])
    assert "step:1" not in refs(without)
    unclaimed = unclaimed_image_keys([knative, task, unrelated], without)
    assert (1, ("spec", "steps", 1, "image")) in unclaimed


def test_image_field_with_index() -> None:
    doc = obj("example.com/v1", "Thing", {"images": [{"ref": "a:1"}, {"ref": "b:1"}]})
    found = extract_images([doc], [ImageField("example.com/v1", "Thing", ("spec.images[1].ref",))])
    assert refs(found) == {"b:1"}
    found = extract_images([doc], [ImageField("example.com/v1", "Thing", ("spec.images[5].ref",))])
    assert found == []


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("spec.template.spec.containers[*].image", ("spec", "template", "spec", "containers")),
        ("a[0][*].b", ("a", 0)),
        ("image", ("image",)),
    ],
)
def test_parse_field_path(path: str, expected: tuple[Any, ...]) -> None:
    assert parse_field_path(path)[: len(expected)] == expected


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b", "a[*]", "a[x].b", "a[-1].b", "a.b[0]c"])
def test_parse_field_path_rejects(path: str) -> None:
    with pytest.raises(ValueError):
        parse_field_path(path)


# --- invalid image fields ---------------------------------------------------


@pytest.mark.parametrize("bad", [None, "", "   ", 42, ["evil:1"], {"name": "evil"}, True])
def test_invalid_image_values_are_errors(bad: Any) -> None:
    doc = obj("apps/v1", "Deployment", template({"containers": [{"name": "a", "image": bad}]}))
    with pytest.raises(ManifestError) as info:
        extract_images([doc])
    assert info.value.reason == "invalid-image-field"
    assert "spec.template.spec.containers[0].image" in info.value.message


@pytest.mark.parametrize(
    "spec",
    [
        {"containers": {"app": {"image": "evil:1"}}},
        {"initContainers": "evil:1"},
        {"containers": ["evil:1"]},
    ],
)
def test_malformed_container_lists_are_errors(spec: dict[str, Any]) -> None:
    with pytest.raises(ManifestError) as info:
        extract_images([obj("v1", "Pod", spec)])
    assert info.value.reason == "invalid-image-field"


def test_malformed_pod_spec_of_builtin_kind_is_an_error() -> None:
    with pytest.raises(ManifestError):
        extract_images([obj("apps/v1", "Deployment", {"template": {"spec": ["x"]}})])


def test_invalid_image_in_policy_field_is_an_error() -> None:
    doc = obj("tekton.dev/v1", "Task", {"steps": [{"image": 7}]})
    with pytest.raises(ManifestError) as info:
        extract_images([doc], [ImageField("tekton.dev/v1", "Task", ("spec.steps[*].image",))])
    assert info.value.reason == "invalid-image-field"
    doc = obj("tekton.dev/v1", "Task", {"steps": {"a": {"image": "x"}}})
    with pytest.raises(ManifestError):
        extract_images([doc], [ImageField("tekton.dev/v1", "Task", ("spec.steps[*].image",))])


# --- pinning ----------------------------------------------------------------

DIGEST = "@sha256:" + "a" * 64


def test_pin_changes_exactly_the_given_paths() -> None:
    docs = [
        obj("apps/v1", "Deployment", template(pod_spec())),
        obj("v1", "Pod", pod_spec()),
    ]
    before = copy.deepcopy(docs)
    found = extract_images(docs)
    target = next(o for o in found if o.doc_index == 1 and o.ref == "app:1")
    out = pin_images(docs, {(target.doc_index, target.path): "app" + DIGEST})
    assert docs == before  # inputs untouched
    assert out[1]["spec"]["containers"][0]["image"] == "app" + DIGEST
    out[1]["spec"]["containers"][0]["image"] = "app:1"
    assert out == before  # and nothing else changed
    assert out[0] is not docs[0]


def test_pin_all_occurrences() -> None:
    docs = [obj("batch/v1", "Job", template(pod_spec()))]
    found = extract_images(docs)
    out = pin_images(docs, {(o.doc_index, o.path): o.ref + DIGEST for o in found})
    assert {o.ref for o in extract_images(out)} == {o.ref + DIGEST for o in found}


def test_pin_does_not_leak_through_shared_objects() -> None:
    shared = {"name": "a", "image": "app:1"}
    docs = [obj("v1", "Pod", {"containers": [shared]}), obj("v1", "Pod", {"containers": [shared]})]
    out = pin_images(docs, {(0, ("spec", "containers", 0, "image")): "app" + DIGEST})
    assert out[1]["spec"]["containers"][0]["image"] == "app:1"


@pytest.mark.parametrize(
    "key",
    [
        (5, ("spec", "containers", 0, "image")),
        (0, ("spec", "containers", 3, "image")),
        (0, ("spec", "containers", 0, "nope")),
        (0, ("spec", "containers", "0", "image")),
        (0, ("spec", "containers", 0, "name", "x")),
        (0, ("spec",)),
        (0, ()),
    ],
)
def test_pin_misuse_is_a_runtime_error(key: tuple[int, tuple[str | int, ...]]) -> None:
    docs = [obj("v1", "Pod", {"containers": [{"name": "a", "image": "app:1"}]})]
    with pytest.raises(RuntimeError):
        pin_images(docs, {key: "app" + DIGEST})
