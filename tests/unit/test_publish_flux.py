"""The Flux artifact (deterministic, Flux's shape), the cosign payload, and publish's inputs."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from gate.cli.publish import load_publish_signer, parse_target
from gate.errors import UsageError, VerificationError
from gate.flux import (
    FLUX_CONFIG,
    FLUX_CONTENT,
    MANIFESTS_FILE,
    REVISION_ANNOTATION,
    SOURCE_ANNOTATION,
    flux_artifact,
    flux_revision,
    pack_tar_gz,
    simple_signing_payload,
    strip_credentials,
    unpack_tar_gz,
)
from gate.signing import KeyPasswordError, generate_key_pair
from testkit import cosign
from tests.unit.helpers import make_policy, write_policy

MANIFESTS = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_same_input_same_bytes() -> None:
    a = flux_artifact(MANIFESTS, source="https://g/x.git", revision=f"main@sha1:{COMMIT}")
    b = flux_artifact(MANIFESTS, source="https://g/x.git", revision=f"main@sha1:{COMMIT}")
    assert a.manifest == b.manifest
    assert a.digest == b.digest
    assert [x.data for x in a.blobs] == [x.data for x in b.blobs]
    assert flux_artifact(MANIFESTS + "#\n").digest != a.digest


def test_flux_shape() -> None:
    art = flux_artifact(MANIFESTS, source="https://g/x.git", revision=f"v1@sha1:{COMMIT}")
    doc = json.loads(art.manifest)
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == FLUX_CONFIG
    assert [layer["mediaType"] for layer in doc["layers"]] == [FLUX_CONTENT]
    assert doc["annotations"][SOURCE_ANNOTATION] == "https://g/x.git"
    assert doc["annotations"][REVISION_ANNOTATION] == f"v1@sha1:{COMMIT}"
    assert "org.opencontainers.image.created" not in doc["annotations"]  # no clock in it
    config, layer = art.blobs
    assert config.data == b"{}"
    assert unpack_tar_gz(layer.data) == {MANIFESTS_FILE: MANIFESTS.encode()}


def test_tar_is_normalised() -> None:
    data = pack_tar_gz({"b.yaml": b"b", "a/x.yaml": b"x"})
    assert data[4:8] == b"\0\0\0\0"  # gzip MTIME 0
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a/x.yaml", "b.yaml"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        assert m.isreg()
    assert data == pack_tar_gz({"a/x.yaml": b"x", "b.yaml": b"b"})


@pytest.mark.parametrize("name", ["/etc/passwd", "../x", "a/../../x", "", "a//b", "./a"])
def test_tar_refuses_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        pack_tar_gz({name: b"x"})


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return gzip.compress(raw.getvalue())


def test_unpack_refuses_links_traversal_and_garbage() -> None:
    link = tarfile.TarInfo("manifests.yaml")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(VerificationError, match="non-file"):
        unpack_tar_gz(_tar((link, b"")))
    up = tarfile.TarInfo("../escape.yaml")
    up.size = 1
    with pytest.raises(VerificationError, match="relative"):
        unpack_tar_gz(_tar((up, b"x")))
    with pytest.raises(VerificationError, match="gzip"):
        unpack_tar_gz(b"not gzip")
    big = pack_tar_gz({"m.yaml": b"x" * 4096})
    with pytest.raises(VerificationError, match="more than"):
        unpack_tar_gz(big, max_bytes=1024)


def test_revision_format() -> None:
    assert flux_revision("main", COMMIT) == f"main@sha1:{COMMIT}"
    assert flux_revision(None, COMMIT) == f"sha1:{COMMIT}"
    sha256 = "a" * 64
    assert flux_revision("v1", sha256, object_format="sha256") == f"v1@sha256:{sha256}"
    assert flux_revision("v1.2.0", None) == "v1.2.0"
    with pytest.raises(ValueError):
        flux_revision("main", "HEAD")


def test_credentials_never_reach_an_annotation() -> None:
    assert (
        strip_credentials("https://bot:tok@git.example.com/a.git")
        == "https://git.example.com/a.git"
    )
    assert (
        strip_credentials("https://tok@git.example.com:8443/a") == "https://git.example.com:8443/a"
    )
    assert strip_credentials("git@github.com:acme/a.git") == "git@github.com:acme/a.git"
    art = flux_artifact(MANIFESTS, source="https://u:p@g.example/x.git")
    assert b"u:p" not in art.manifest


def test_payload_is_what_cosign_signs() -> None:
    digest = "sha256:" + "ab" * 32
    assert simple_signing_payload("r.example/a/b", digest) == cosign.simple_signing_payload(
        "r.example/a/b", digest
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("registry.example.com/a:b", "oci://"),
        ("oci://a/b:c", "registry host"),
        ("oci://registry.example.com/a", "tag"),
        ("oci://registry.example.com/a@sha256:" + "0" * 64, "tag"),
        ("oci://registry.example.com/A:b", "registry.example.com/A"),
    ],
)
def test_target_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_target(text)
    assert fragment in e.value.diagnostics()


def test_target() -> None:
    t = parse_target("oci://127.0.0.1:5000/deploy/shop:prod")
    assert (t.repo_name, t.tag, str(t)) == (
        "127.0.0.1:5000/deploy/shop",
        "prod",
        "127.0.0.1:5000/deploy/shop:prod",
    )
    assert parse_target("oci://localhost/x:y").repo_name == "localhost/x"


def test_signer_errors(tmp_path: Path) -> None:
    rules = {"images": [{"match": ["docker.io/**"], "exempt": "t"}]}
    with pytest.raises(UsageError, match="no key"):
        load_publish_signer(make_policy(rules), {})
    from gate.policy import load_policy

    policy = load_policy(
        write_policy(tmp_path / "p.yaml", {**rules, "output": {"publish": {"key": "k.key"}}})
    )
    with pytest.raises(UsageError, match="GATE_PUBLISH_KEY_PASSWORD"):
        load_publish_signer(policy, {})
    with pytest.raises(UsageError, match="cannot read"):
        load_publish_signer(policy, {"GATE_PUBLISH_KEY_PASSWORD": "pw"})
    key = generate_key_pair()
    (tmp_path / "k.key").write_bytes(key.private_pem(b"pw"))
    with pytest.raises(KeyPasswordError) as e:
        load_publish_signer(policy, {"GATE_PUBLISH_KEY_PASSWORD": "wrong"})
    assert e.value.exit_code == 2
    signer = load_publish_signer(policy, {"GATE_PUBLISH_KEY_PASSWORD": "pw"})
    assert signer.public_pem() == key.public_pem()
