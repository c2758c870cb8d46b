"""The OCI builder: what it pushes is readable back at the documented tags, byte for byte."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from testkit import oci
from testkit.oci import Descriptor, Layer
from testkit.registry import Registry

pytestmark = pytest.mark.integration


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _read_back(registry: Registry, repo: str, ref: str) -> tuple[oci.Fetched, dict]:
    """GET by ``ref``, then GET again by the digest of those bytes: both must agree."""
    first = oci.get_manifest(registry, repo, ref)
    by_digest = oci.get_manifest(registry, repo, _sha(first.data))
    assert by_digest.data == first.data
    assert by_digest.media_type == first.media_type
    return first, first.json()


def _chart_tgz(name: str = "demo", version: str = "1.2.3+build.7") -> bytes:
    files = {
        f"{name}/Chart.yaml": (
            f"apiVersion: v2\nname: {name}\nversion: {version}\n"
            "description: a test chart\nappVersion: '4.5'\ntype: application\n"
        ).encode(),
        f"{name}/values.yaml": b"replicas: 1\n",
        f"{name}/templates/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    }
    return oci.make_layer(files)[0]


# --- images -----------------------------------------------------------------------------------


def test_image_is_real_and_deterministic(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(registry, repo_name, "v1", seed="a")
    again = oci.push_image(registry, repo_name, "v1-again", seed="a")
    other = oci.push_image(registry, repo_name, "v2", seed="b")
    assert image.digest == again.digest != other.digest
    assert image.media_type == oci.OCI_MANIFEST
    assert str(image.platform) == "linux/amd64"

    fetched, manifest = _read_back(registry, repo_name, "v1")
    assert fetched.digest == image.digest
    assert fetched.media_type == oci.OCI_MANIFEST
    assert len(fetched.data) == image.size
    # The config lists the uncompressed digest of each (gzip tar) layer.
    config = json.loads(oci.get_blob(registry, repo_name, manifest["config"]["digest"]))
    assert manifest["config"]["mediaType"] == oci.OCI_CONFIG
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    layer = manifest["layers"][0]
    assert layer["mediaType"] == oci.OCI_LAYER_GZIP
    blob = oci.get_blob(registry, repo_name, layer["digest"])
    assert config["rootfs"]["diff_ids"] == [_sha(gzip.decompress(blob))]
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert tar.getnames() == ["gate-test/seed"]


def test_image_with_files_annotations_and_docker_types(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(
        registry,
        repo_name,
        "docker",
        files={"etc/motd": b"hello\n"},
        annotations={"org.opencontainers.image.source": "https://example.com/app"},
        docker=True,
    )
    fetched, manifest = _read_back(registry, repo_name, "docker")
    assert fetched.digest == image.digest
    assert fetched.media_type == oci.DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == oci.DOCKER_CONFIG
    assert manifest["layers"][0]["mediaType"] == oci.DOCKER_LAYER_GZIP
    assert manifest["annotations"]["org.opencontainers.image.source"] == "https://example.com/app"


def test_untagged_image_is_reachable_by_digest_only(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(registry, repo_name, None, seed="untagged")
    oci.push_image(registry, repo_name, "other", seed="x")
    assert oci.get_manifest(registry, repo_name, image.digest).digest == image.digest
    assert oci.list_tags(registry, repo_name) == ["other"]


# --- indexes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("docker", "media_type", "child_type"),
    [
        (False, oci.OCI_INDEX, oci.OCI_MANIFEST),
        (True, oci.DOCKER_MANIFEST_LIST, oci.DOCKER_MANIFEST),
    ],
)
def test_multi_arch_index(
    registry: Registry, repo_name: str, docker: bool, media_type: str, child_type: str
) -> None:
    index = oci.push_index(
        registry, repo_name, "multi", platforms=["linux/amd64", "linux/arm64/v8"], docker=docker
    )
    fetched, body = _read_back(registry, repo_name, "multi")
    assert fetched.digest == index.digest
    assert fetched.media_type == media_type == body["mediaType"]
    platforms = [m["platform"] for m in body["manifests"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
    ]
    assert [c.digest for c in index.children] == [m["digest"] for m in body["manifests"]]
    for entry in body["manifests"]:
        child = oci.get_manifest(registry, repo_name, entry["digest"])
        assert child.media_type == entry["mediaType"] == child_type
        assert len(child.data) == entry["size"]


def test_index_from_given_manifests(registry: Registry, repo_name: str) -> None:
    amd = oci.push_image(registry, repo_name, platform="linux/amd64", seed=1)
    arm = oci.push_image(registry, repo_name, platform="linux/arm64", seed=1)
    index = oci.push_index(registry, repo_name, "v1", manifests=[amd, arm], annotations={"a": "b"})
    _, body = _read_back(registry, repo_name, "v1")
    assert [m["digest"] for m in body["manifests"]] == [amd.digest, arm.digest]
    assert body["annotations"] == {"a": "b"}
    assert index.children == (amd, arm)


# --- Helm charts ------------------------------------------------------------------------------


def test_helm_chart_layout(registry: Registry, repo_name: str) -> None:
    chart = _chart_tgz()
    prov = b"-----BEGIN PGP SIGNED MESSAGE-----\n...\n"
    desc = oci.push_helm_chart(registry, repo_name, chart, prov_bytes=prov)
    assert oci.list_tags(registry, repo_name) == ["1.2.3_build.7"]  # '+' is not legal in a tag
    fetched, manifest = _read_back(registry, repo_name, "1.2.3_build.7")
    assert fetched.digest == desc.digest
    assert fetched.media_type == oci.OCI_MANIFEST
    assert "mediaType" not in manifest  # as Helm 4 writes it: only the Content-Type says so
    assert manifest["config"]["mediaType"] == oci.HELM_CONFIG
    config = json.loads(oci.get_blob(registry, repo_name, manifest["config"]["digest"]))
    assert config == {
        "name": "demo",
        "version": "1.2.3+build.7",
        "description": "a test chart",
        "apiVersion": "v2",
        "appVersion": "4.5",
        "type": "application",
    }
    assert list(config)[:2] == ["name", "version"]  # Helm's struct order
    chart_layer, prov_layer = manifest["layers"]
    assert chart_layer["mediaType"] == oci.HELM_CHART
    assert oci.get_blob(registry, repo_name, chart_layer["digest"]) == chart
    assert prov_layer["mediaType"] == oci.HELM_PROV
    assert oci.get_blob(registry, repo_name, prov_layer["digest"]) == prov
    assert manifest["annotations"]["org.opencontainers.image.version"] == "1.2.3+build.7"


def test_real_helm_pulls_the_chart(registry: Registry, repo_name: str, tmp_path: Path) -> None:
    """Interop: Helm itself reads what we push (chart and provenance, '+' restored)."""
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("helm not on PATH (scripts/bootstrap.sh puts it in .tools/bin)")
    repo = f"{repo_name}/demo"  # helm names the file after the last path component
    oci.push_helm_chart(registry, repo, _chart_tgz(), prov_bytes=b"prov")
    (tmp_path / "out").mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    env |= {f"HELM_{k}_HOME": str(tmp_path / k) for k in ("CACHE", "CONFIG", "DATA")}
    subprocess.run(
        [helm, "pull", f"oci://{registry.host}/{repo}", "--version", "1.2.3+build.7",
         "--plain-http", "--prov", "-d", str(tmp_path / "out")],
        check=True, capture_output=True, env=env, timeout=30,
    )  # fmt: skip
    pulled = tmp_path / "out" / "demo-1.2.3+build.7.tgz"
    assert pulled.read_bytes() == _chart_tgz()
    assert pulled.with_name(pulled.name + ".prov").read_bytes() == b"prov"


def test_helm_chart_without_provenance(registry: Registry, repo_name: str) -> None:
    oci.push_helm_chart(registry, repo_name, _chart_tgz(version="0.1.0"))
    _, manifest = _read_back(registry, repo_name, "0.1.0")
    assert [layer["mediaType"] for layer in manifest["layers"]] == [oci.HELM_CHART]


# --- cosign legacy tags -----------------------------------------------------------------------


def test_signature_tags_append_like_cosign(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    sig1 = Layer(
        b'{"critical":{}}',
        oci.COSIGN_SIMPLESIGNING,
        {"dev.cosignproject.cosign/signature": "MEUC1"},
    )
    sig2 = Layer(sig1.data, sig1.media_type, {"dev.cosignproject.cosign/signature": "MEUC2"})
    oci.push_signature_manifest(registry, repo_name, image.digest, [sig1])
    desc = oci.push_signature_manifest(registry, repo_name, image.digest, [sig2, sig1])

    tag = f"sha256-{image.hex}.sig"
    assert oci.signature_tag(image.digest) == tag
    fetched, manifest = _read_back(registry, repo_name, tag)
    assert fetched.digest == desc.digest
    assert fetched.media_type == oci.OCI_MANIFEST
    annotations = [layer["annotations"] for layer in manifest["layers"]]
    assert annotations == [sig1.annotations, sig2.annotations]  # appended, no duplicate
    for layer in manifest["layers"]:
        assert layer["mediaType"] == oci.COSIGN_SIMPLESIGNING
        assert oci.get_blob(registry, repo_name, layer["digest"]) == sig1.data
    config = json.loads(oci.get_blob(registry, repo_name, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in manifest["layers"]]

    replaced = oci.push_signature_manifest(registry, repo_name, image.digest, [sig2], append=False)
    assert len(oci.get_manifest(registry, repo_name, replaced.digest).json()["layers"]) == 1


def test_attestation_tag(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    envelope = json.dumps({"payloadType": "application/vnd.in-toto+json", "payload": ""}).encode()
    att = Layer(
        envelope,
        oci.DSSE_ENVELOPE,
        {
            "predicateType": "https://slsa.dev/provenance/v1",
            "dev.cosignproject.cosign/signature": "",
        },
    )
    oci.push_signature_manifest(registry, repo_name, image.digest, [att], suffix="att")
    _, manifest = _read_back(registry, repo_name, f"sha256-{image.hex}.att")
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == oci.DSSE_ENVELOPE
    assert layer["annotations"]["predicateType"] == "https://slsa.dev/provenance/v1"
    assert oci.get_blob(registry, repo_name, layer["digest"]) == envelope


def test_signatures_in_another_repository(registry: Registry, repo_name: str) -> None:
    """Like COSIGN_REPOSITORY: the image in one repository, its signatures in another."""
    image = oci.push_image(registry, repo_name, "v1")
    sig_repo = f"{repo_name}-signatures"
    oci.push_signature_manifest(
        registry, sig_repo, image.digest, [Layer(b"{}", oci.COSIGN_SIMPLESIGNING)]
    )
    assert oci.list_tags(registry, sig_repo) == [oci.signature_tag(image.digest)]
    assert oci.list_tags(registry, repo_name) == ["v1"]


# --- OCI 1.1 referrers ------------------------------------------------------------------------


def test_referrers_and_fallback_index(registry: Registry, repo_name: str) -> None:
    image = oci.push_image(registry, repo_name, "v1")
    bundle = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
    sig_ann = {
        "dev.sigstore.bundle.content": "dsse-envelope",
        "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
    }
    first = oci.push_referrer(
        registry, repo_name, image, oci.SIGSTORE_BUNDLE, bundle, oci.SIGSTORE_BUNDLE, sig_ann
    )
    second = oci.push_referrer(
        registry, repo_name, image, "application/vnd.example.sbom", b"sbom", "text/plain"
    )
    oci.push_referrer(  # pushing the same referrer again does not list it twice
        registry, repo_name, image, oci.SIGSTORE_BUNDLE, bundle, oci.SIGSTORE_BUNDLE, sig_ann
    )

    fetched, manifest = _read_back(registry, repo_name, first.digest)
    assert fetched.media_type == oci.OCI_MANIFEST
    assert manifest["artifactType"] == oci.SIGSTORE_BUNDLE
    assert manifest["subject"] == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": image.digest,
        "size": image.size,
    }
    assert manifest["config"] == {
        "mediaType": oci.OCI_EMPTY,
        "digest": _sha(b"{}"),
        "size": 2,
    }
    assert oci.get_blob(registry, repo_name, manifest["config"]["digest"]) == b"{}"
    assert oci.get_blob(registry, repo_name, manifest["layers"][0]["digest"]) == bundle
    assert manifest["annotations"] == sig_ann

    index_fetched, index = _read_back(registry, repo_name, f"sha256-{image.hex}")
    assert index_fetched.media_type == oci.OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": oci.OCI_MANIFEST,
            "digest": first.digest,
            "size": first.size,
            "artifactType": oci.SIGSTORE_BUNDLE,
            "annotations": sig_ann,
        },
        {
            "mediaType": oci.OCI_MANIFEST,
            "digest": second.digest,
            "size": second.size,
            "artifactType": "application/vnd.example.sbom",
        },
    ]
    # 2.8.2 has no referrers API: a plain 404, which is why the fallback tag exists.
    resp = oci.client(registry).request(
        "GET", f"/v2/{repo_name}/referrers/{image.digest}", repo_name, ok=(404,)
    )
    assert resp.status_code == 404


def test_referrer_to_an_index(registry: Registry, repo_name: str) -> None:
    index = oci.push_index(registry, repo_name, "multi")
    ref = oci.push_referrer(
        registry, repo_name, index, "application/vnd.example", b"x", "text/plain"
    )
    _, manifest = _read_back(registry, repo_name, ref.digest)
    assert manifest["subject"]["mediaType"] == oci.OCI_INDEX
    _, fallback = _read_back(registry, repo_name, oci.referrers_tag(index.digest))
    assert [m["digest"] for m in fallback["manifests"]] == [ref.digest]


# --- token auth -------------------------------------------------------------------------------


def test_push_and_read_with_token_auth(token_registry: Registry, repo_name: str) -> None:
    assert token_registry.auth is not None
    image = oci.push_image(token_registry, repo_name, "v1")
    oci.push_signature_manifest(
        token_registry, repo_name, image.digest, [Layer(b"{}", oci.COSIGN_SIMPLESIGNING)]
    )
    fetched = oci.get_manifest(token_registry, repo_name, oci.signature_tag(image.digest))
    assert fetched.media_type == oci.OCI_MANIFEST
    # The cached client asks once for the push scope of this repository, then reuses it.
    scope = f"repository:{repo_name}:pull,push"
    assert token_registry.auth.count(scope=scope) == 1


def test_descriptor_serialisation() -> None:
    desc = Descriptor.of(b"abc", oci.OCI_MANIFEST, platform=oci.Platform.parse("linux/arm/v7"))
    assert desc.to_dict() == {
        "mediaType": oci.OCI_MANIFEST,
        "digest": _sha(b"abc"),
        "size": 3,
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
    }
    assert oci.chart_tag("1.0.0+abc") == "1.0.0_abc"
    assert oci.referrers_tag("sha256:ab") == "sha256-ab"
    assert oci.signature_tag("sha256:ab", "att") == "sha256-ab.att"
