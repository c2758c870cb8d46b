"""Self-tests for testkit.helmcharts / chartrepo: helm and gpg are the oracles."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from testkit import oci
from testkit.chartrepo import ChartRepoServer
from testkit.helmcharts import (
    Helm,
    PackagedChart,
    add_armor_checksum,
    build_signed_chart,
    helm_verify,
    parse_prov,
    push_chart,
    tamper,
)
from testkit.pgp import PgpKey, PgpKeyFactory, PgpVerifyHome
from testkit.registry import Registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pubring(pgp_key: PgpKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pgp_key.write_pubring(tmp_path_factory.mktemp("keyring") / "pubring.gpg")


@pytest.fixture
def chart_copy(signed_chart: PackagedChart, tmp_path: Path) -> PackagedChart:
    """A private copy of the session chart that a test may damage."""
    assert signed_chart.prov is not None
    tgz = Path(shutil.copy2(signed_chart.tgz, tmp_path / signed_chart.tgz.name))
    prov = Path(shutil.copy2(signed_chart.prov, tmp_path / signed_chart.prov.name))
    return PackagedChart(signed_chart.name, signed_chart.version, tgz, prov)


@pytest.fixture
def gpg_verifier(pgp_key: PgpKey) -> Iterator[PgpVerifyHome]:
    with PgpVerifyHome([pgp_key]) as home:
        yield home


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:  # loopback test server
        return bytes(resp.read())


# -- packaging ---------------------------------------------------------------------


def test_packaged_chart_layout(signed_chart: PackagedChart, helm_tool: Helm) -> None:
    assert signed_chart.tgz.name == "demo-0.1.0.tgz"
    assert signed_chart.prov is not None
    assert signed_chart.prov.name == "demo-0.1.0.tgz.prov"
    with tarfile.open(signed_chart.tgz) as tar:
        names = set(tar.getnames())
    assert {"demo/Chart.yaml", "demo/values.yaml", "demo/templates/deployment.yaml"} <= names
    rendered = helm_tool.run("template", "rel", str(signed_chart.tgz)).stdout
    doc = yaml.safe_load(rendered)
    assert doc["kind"] == "Deployment"
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/acme/app:1.0.0"


def test_prov_format(signed_chart: PackagedChart) -> None:
    assert signed_chart.prov is not None
    prov = signed_chart.prov.read_bytes()
    assert prov.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n")
    meta, files = parse_prov(prov)
    chart = yaml.safe_load(meta)
    assert (chart["name"], chart["version"], chart["apiVersion"]) == ("demo", "0.1.0", "v2")
    assert files == {"demo-0.1.0.tgz": f"sha256:{signed_chart.sha256}"}
    assert b"\n...\nfiles:\n" in prov
    # helm 4 (go-crypto) armor: no CRC24 line, no final newline.
    assert b"\n=" not in prov.split(b"-----BEGIN PGP SIGNATURE-----")[1]
    assert prov.endswith(b"-----END PGP SIGNATURE-----")


# -- verification with the real tools -----------------------------------------------


def test_helm_verify_passes(signed_chart: PackagedChart, helm_tool: Helm, pubring: Path) -> None:
    proc = helm_verify(helm_tool, signed_chart.tgz, pubring)
    assert proc.returncode == 0, proc.stderr
    assert f"sha256:{signed_chart.sha256}" in proc.stdout


def test_helm_verify_fails_after_one_byte_change(
    chart_copy: PackagedChart, helm_tool: Helm, pubring: Path
) -> None:
    tamper(chart_copy.tgz, offset=100)
    proc = helm_verify(helm_tool, chart_copy.tgz, pubring)
    assert proc.returncode != 0
    assert "sha256 sum does not match" in proc.stderr


def test_helm_verify_fails_under_another_file_name(
    chart_copy: PackagedChart, helm_tool: Helm, pubring: Path
) -> None:
    assert chart_copy.prov is not None
    renamed = chart_copy.tgz.with_name("demo-9.9.9.tgz")
    chart_copy.tgz.rename(renamed)
    chart_copy.prov.rename(renamed.with_name(renamed.name + ".prov"))
    assert helm_verify(helm_tool, renamed, pubring).returncode != 0


def test_helm_verify_fails_with_another_key(
    signed_chart: PackagedChart, helm_tool: Helm, pgp_keys: PgpKeyFactory, tmp_path: Path
) -> None:
    other = pgp_keys("Intruder").write_pubring(tmp_path / "other.gpg")
    assert helm_verify(helm_tool, signed_chart.tgz, other).returncode != 0


@pytest.mark.parametrize("algo", ["ed25519", "rsa2048"])
def test_sign_with_each_algorithm(
    algo: str, helm_tool: Helm, pgp_keys: PgpKeyFactory, tmp_path: Path
) -> None:
    key = pgp_keys(f"Chart Signer {algo}", algo)  # type: ignore[arg-type]
    chart = build_signed_chart(helm_tool, tmp_path, key, name="algo", version="1.2.3")
    pubring = key.write_pubring(tmp_path / "pub.gpg")
    proc = helm_verify(helm_tool, chart.tgz, pubring)
    assert proc.returncode == 0, proc.stderr
    assert key.fingerprint in proc.stdout


def test_gpg_verify_prov(
    signed_chart: PackagedChart, pgp_key: PgpKey, gpg_verifier: PgpVerifyHome
) -> None:
    """gpg accepts the signature, but exits 2 on helm 4's checksum-less armor.

    With the CRC24 line restored (same signed bytes), gpg exits 0.
    """
    assert signed_chart.prov is not None
    prov = signed_chart.prov.read_bytes()
    proc = gpg_verifier.verify("-", input=prov)
    assert f"[GNUPG:] VALIDSIG {pgp_key.fingerprint} ".encode() in proc.stdout
    assert b"[GNUPG:] GOODSIG " in proc.stdout
    assert proc.returncode == 2, "gpg no longer trips on helm 4 armor: update the docs"
    assert b"invalid radix64 character" in proc.stderr

    fixed = gpg_verifier.verify("-", input=add_armor_checksum(prov))
    assert fixed.returncode == 0, fixed.stderr
    assert f"[GNUPG:] VALIDSIG {pgp_key.fingerprint} ".encode() in fixed.stdout


def test_gpg_rejects_tampered_prov(
    signed_chart: PackagedChart, gpg_verifier: PgpVerifyHome
) -> None:
    assert signed_chart.prov is not None
    prov = add_armor_checksum(signed_chart.prov.read_bytes())
    forged = prov.replace(b"version: 0.1.0", b"version: 0.1.1", 1)
    assert forged != prov
    proc = gpg_verifier.verify("-", input=forged)
    assert proc.returncode == 1
    assert b"[GNUPG:] BADSIG " in proc.stdout
    assert b"VALIDSIG" not in proc.stdout


# -- HTTP chart repository -------------------------------------------------------------


def test_chart_repo_serves_index_chart_and_prov(
    chart_repo: ChartRepoServer, signed_chart: PackagedChart
) -> None:
    assert signed_chart.prov is not None
    url = chart_repo.add(signed_chart)
    assert url == f"{chart_repo.url}/demo-0.1.0.tgz"
    assert chart_repo.port != 0 and chart_repo.url.startswith("http://127.0.0.1:")
    index = yaml.safe_load(_get(f"{chart_repo.url}/index.yaml"))
    (entry,) = index["entries"]["demo"]
    assert entry["version"] == "0.1.0"
    assert entry["urls"] == [url]
    assert entry["digest"] == signed_chart.sha256
    assert _get(url) == signed_chart.tgz.read_bytes()
    assert _get(url + ".prov") == signed_chart.prov.read_bytes()
    assert chart_repo.requests == ["/index.yaml", "/demo-0.1.0.tgz", "/demo-0.1.0.tgz.prov"]


def test_helm_pull_verify_from_chart_repo(
    chart_repo: ChartRepoServer,
    signed_chart: PackagedChart,
    helm_tool: Helm,
    pubring: Path,
    tmp_path: Path,
) -> None:
    url = chart_repo.add(signed_chart)
    dest = tmp_path / "pulled"
    dest.mkdir()  # helm pull does not create --destination
    args = ["pull", url, "--verify", "--keyring", str(pubring), "--destination", str(dest)]
    proc = helm_tool.run(*args, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "demo-0.1.0.tgz").read_bytes() == signed_chart.tgz.read_bytes()

    # The same pull fails once the served archive is one byte off.
    bad = tamper(signed_chart.tgz, offset=100, dest=tmp_path / "bad.tgz")
    chart_repo.put_file("demo-0.1.0.tgz", bad.read_bytes())
    shutil.rmtree(dest)
    dest.mkdir()
    proc = helm_tool.run(*args, check=False)
    assert proc.returncode != 0
    assert "sha256 sum does not match" in proc.stderr


def test_chart_repo_lifecycle(helm_tool: Helm) -> None:
    with ChartRepoServer(helm_tool) as one, ChartRepoServer(helm_tool) as two:
        assert one.port != two.port
        assert yaml.safe_load(_get(f"{one.url}/index.yaml"))["entries"] == {}
        url, directory = one.url, one.directory
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/index.yaml")
    assert not directory.exists()


# -- OCI --------------------------------------------------------------------------------


def test_helm_push_to_oci_registry(
    registry: Registry,
    repo_name: str,
    helm_tool: Helm,
    pgp_key: PgpKey,
    pubring: Path,
    tmp_path: Path,
) -> None:
    chart = build_signed_chart(helm_tool, tmp_path, pgp_key, name="ocidemo", version="0.2.0+b1")
    assert chart.prov is not None
    pushed = push_chart(helm_tool, chart, registry.host, repo_name)
    assert pushed.tag == "0.2.0_b1"
    assert pushed.repository == f"{repo_name}/ocidemo"
    assert pushed.ref == f"{registry.host}/{repo_name}/ocidemo:0.2.0_b1"

    # An explicit client, closed here: oci's cached per-registry clients outlive the test.
    with oci.OciClient.for_registry(registry) as client:
        fetched = client.get_manifest(pushed.repository, pushed.tag)
        manifest = fetched.json()
        layers = {layer["mediaType"]: layer["digest"] for layer in manifest["layers"]}
        blobs = {
            kind: client.get_blob(pushed.repository, digest) for kind, digest in layers.items()
        }
        config = yaml.safe_load(client.get_blob(pushed.repository, manifest["config"]["digest"]))
    assert fetched.digest == pushed.digest
    assert fetched.media_type == oci.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == oci.HELM_CONFIG
    assert set(layers) == {oci.HELM_CHART, oci.HELM_PROV}
    assert blobs[oci.HELM_CHART] == chart.tgz.read_bytes()
    assert hashlib.sha256(blobs[oci.HELM_CHART]).hexdigest() == chart.sha256
    assert blobs[oci.HELM_PROV] == chart.prov.read_bytes()
    assert (config["name"], config["version"]) == ("ocidemo", "0.2.0+b1")

    # The real client pulls it back by version and verifies the provenance layer.
    base = ["pull", "--plain-http", "--verify", "--keyring", str(pubring)]
    dest = tmp_path / "pulled"
    dest.mkdir()  # helm pull does not create --destination
    oci_ref = f"oci://{registry.host}/{pushed.repository}"
    proc = helm_tool.run(
        *base, oci_ref, "--version", "0.2.0+b1", "--destination", str(dest), check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert (dest / "ocidemo-0.2.0+b1.tgz").read_bytes() == chart.tgz.read_bytes()

    # Trap (helm 4.1.4): pulled by digest, the file is saved as
    # "ocidemo@sha256-<hex>.tgz" and --verify looks that name up in the .prov.
    by_digest = tmp_path / "by-digest"
    by_digest.mkdir()
    proc = helm_tool.run(
        *base, f"{oci_ref}@{pushed.digest}", "--destination", str(by_digest), check=False
    )
    assert proc.returncode != 0
    assert "provenance does not contain a SHA for a file named" in proc.stderr


def test_tamper_helper(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    tamper(path, offset=1)
    assert path.read_bytes() == b"acc"
    copy = tamper(path, dest=tmp_path / "g")
    assert (copy.read_bytes(), path.read_bytes()) == (b"acb", b"acc")
