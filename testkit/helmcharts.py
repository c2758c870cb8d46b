"""Small Helm charts, packaged and signed by the real helm binary.

``helm`` runs with every per-user directory (cache, config, data, plugins,
registry config, content cache) in a temp dir of its own, and with
``KUBECONFIG`` pointing nowhere: a developer's repositories, plugins, registry
logins or cluster can never leak into a test.

Traps seen with helm 4.1.4 (and checked by tests/testkit/test_helmcharts.py):
- ``helm package --sign`` reads a *legacy* binary secret keyring
  (``gpg --export-secret-keys``); gpg 2.1+ has no secring.gpg of its own.
- ``helm verify --keyring`` wants a binary public keyring (``gpg --export``).
- helm 4 writes the ``.prov`` signature armor WITHOUT the CRC24 checksum line
  (``=XXXX``) and without a final newline. gpg/gpgv 2.2 then read the
  ``-----END PGP SIGNATURE-----`` line as base64 ("invalid radix64 character
  2D skipped"), print GOODSIG and VALIDSIG, and still exit 2. A verifier that
  trusts gpg's exit code rejects every genuine helm 4 chart; one that trusts
  only GOODSIG must also make sure the failure is just this one.
  ``add_armor_checksum()`` rewrites the armor so that gpg exits 0.
- Signatures carry a ``salt@notations.openpgpjs.org`` notation (go-crypto).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from testkit.pgp import PgpKey

DEFAULT_IMAGE = "registry.example.com/acme/app"


class HelmError(RuntimeError):
    pass


class Helm:
    """The helm binary with isolated homes under one temp dir."""

    def __init__(self, root: Path | None = None, binary: str = "helm") -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="helm-")) if root is None else Path(root)
        self.binary = binary

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
        env.update(
            {
                "HELM_CACHE_HOME": str(self.root / "cache"),
                "HELM_CONFIG_HOME": str(self.root / "config"),
                "HELM_DATA_HOME": str(self.root / "data"),
                "HELM_PLUGINS": str(self.root / "plugins"),
                "HELM_REGISTRY_CONFIG": str(self.root / "registry.json"),
                "HELM_REPOSITORY_CONFIG": str(self.root / "repositories.yaml"),
                "HELM_REPOSITORY_CACHE": str(self.root / "cache" / "repository"),
                "HELM_CONTENT_CACHE": str(self.root / "cache" / "content"),
                "KUBECONFIG": str(self.root / "no-kubeconfig"),
                "DOCKER_CONFIG": str(self.root / "docker"),
                "NO_COLOR": "1",
            }
        )
        env.update(extra or {})
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise HelmError(
                f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        return proc

    def cleanup(self) -> None:
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class PackagedChart:
    """A chart archive and, when signed, its provenance file."""

    name: str
    version: str
    tgz: Path
    prov: Path | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tgz.read_bytes()).hexdigest()

    @property
    def filename(self) -> str:
        return self.tgz.name


@dataclass(frozen=True)
class PushedChart:
    """A chart pushed to an OCI registry."""

    ref: str  # host/repo/name:tag
    repository: str  # repo/name (path inside the registry)
    tag: str
    digest: str  # manifest digest, sha256:...


# -- chart sources --------------------------------------------------------------


def chart_files(
    name: str = "demo",
    version: str = "0.1.0",
    app_version: str = "1.0.0",
    image: str = DEFAULT_IMAGE,
    tag: str | None = None,
) -> dict[str, str]:
    """The files of a minimal chart: one Deployment whose image comes from values."""
    chart_yaml = (
        "apiVersion: v2\n"
        f"name: {name}\n"
        f"description: A small test chart ({name})\n"
        "type: application\n"
        f"version: {version}\n"
        f'appVersion: "{app_version}"\n'
    )
    values_yaml = (
        "replicaCount: 1\n"
        "image:\n"
        f"  repository: {image}\n"
        f'  tag: "{tag or app_version}"\n'
        "  pullPolicy: IfNotPresent\n"
    )
    deployment = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .Chart.Name }}
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {{ .Chart.Name }}
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
"""
    return {
        "Chart.yaml": chart_yaml,
        "values.yaml": values_yaml,
        "templates/deployment.yaml": deployment,
        ".helmignore": ".git/\n*.swp\n",
    }


def make_chart(directory: Path, name: str = "demo", version: str = "0.1.0", **kw: str) -> Path:
    """Write a chart source tree to ``directory/name``; return that path."""
    root = Path(directory) / name
    for rel, text in chart_files(name, version, **kw).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -- packaging and verification -------------------------------------------------


def package_chart(
    helm: Helm, chart_dir: Path, destination: Path, key: PgpKey | None = None
) -> PackagedChart:
    """``helm package`` (with ``--sign`` when ``key`` is given) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    args = ["package", str(chart_dir), "--destination", str(destination)]
    if key is not None:
        secring = key.write_secring(helm.root / f"secring-{key.fingerprint}.gpg")
        # --key selects by a substring of the user id; the uid is unique here.
        args += ["--sign", "--key", key.uid, "--keyring", str(secring)]
    out = helm.run(*args).stdout
    match = re.search(r"saved it to: (.+\.tgz)", out)
    if not match:
        raise HelmError(f"unexpected helm package output: {out!r}")
    tgz = Path(match.group(1).strip())
    name, version = _chart_identity(chart_dir)
    prov = tgz.with_name(tgz.name + ".prov")
    return PackagedChart(name, version, tgz, prov if key is not None else None)


def _chart_identity(chart_dir: Path) -> tuple[str, str]:
    text = (chart_dir / "Chart.yaml").read_text()
    name = re.search(r"^name:\s*(\S+)", text, re.M)
    version = re.search(r"^version:\s*(\S+)", text, re.M)
    if not name or not version:
        raise HelmError(f"no name/version in {chart_dir}/Chart.yaml")
    return name.group(1), version.group(1)


def helm_verify(helm: Helm, tgz: Path, pubring: Path) -> subprocess.CompletedProcess[str]:
    """``helm verify --keyring PUBRING TGZ``; never raises on a failed check."""
    return helm.run("verify", "--keyring", str(pubring), str(tgz), check=False)


def tamper(path: Path, offset: int = -1, dest: Path | None = None) -> Path:
    """Flip one bit of one byte (default: the last); in place unless ``dest``."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    target = dest or path
    target.write_bytes(bytes(data))
    return target


def add_armor_checksum(prov: bytes) -> bytes:
    """Give a helm 4 ``.prov`` the CRC24 armor checksum that gpg 2.2 expects.

    Only the armor changes; the signed text and the signature packets are the
    same bytes, so this is for tools, not a way to make bad evidence good.
    """
    begin = b"-----BEGIN PGP SIGNATURE-----"
    end = b"-----END PGP SIGNATURE-----"
    head, _, rest = prov.partition(begin)
    armor, _, _ = rest.partition(end)
    lines = armor.strip(b"\n").split(b"\n")
    # Armor headers (if any) end at the first blank line; then base64 body.
    blank = lines.index(b"") if b"" in lines else -1
    body_lines = [ln for ln in lines[blank + 1 :] if ln and not ln.startswith(b"=")]
    packets = base64.b64decode(b"".join(body_lines))
    crc = base64.b64encode(_crc24(packets).to_bytes(3, "big"))
    header = b"\n".join(lines[: blank + 1])
    return b"".join(
        [head, begin, b"\n", header, b"\n", b"\n".join(body_lines), b"\n=", crc, b"\n", end, b"\n"]
    )


def _crc24(data: bytes) -> int:
    # RFC 4880, section 6.1.
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def parse_prov(prov: bytes) -> tuple[bytes, dict[str, str]]:
    """Split a .prov into (signed chart metadata, {filename: "sha256:..."})."""
    text = prov.split(b"\n\n", 1)[1]  # after "Hash: SHA512" and the blank line
    body = text.split(b"\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    meta, _, files_part = body.partition(b"\n...\n")
    files: dict[str, str] = {}
    for line in files_part.decode().splitlines():
        m = re.match(r"\s+(\S+):\s*(sha256:[0-9a-f]{64})", line)
        if m:
            files[m.group(1)] = m.group(2)
    return meta, files


# -- OCI ------------------------------------------------------------------------


def push_chart(
    helm: Helm,
    chart: PackagedChart,
    registry_host: str,
    repository: str = "charts",
    *,
    username: str | None = None,
    password: str | None = None,
) -> PushedChart:
    """``helm push TGZ oci://HOST/REPOSITORY --plain-http``; the .prov goes along.

    helm uploads ``<tgz>.prov`` as a provenance layer when it sits next to the
    archive. The tag is the chart version with ``+`` replaced by ``_``.
    """
    args = ["push", str(chart.tgz), f"oci://{registry_host}/{repository}", "--plain-http"]
    if username is not None and password is not None:
        args += ["--username", username, "--password", password]
    proc = helm.run(*args)
    output = proc.stdout + proc.stderr
    match = re.search(r"Digest:\s*(sha256:[0-9a-f]{64})", output)
    if not match:
        raise HelmError(f"no digest in helm push output: {output!r}")
    tag = chart.version.replace("+", "_")
    path = f"{repository}/{chart.name}"
    return PushedChart(f"{registry_host}/{path}:{tag}", path, tag, match.group(1))


# -- one-call convenience ----------------------------------------------------------


def build_signed_chart(
    helm: Helm,
    workdir: Path,
    key: PgpKey | None,
    name: str = "demo",
    version: str = "0.1.0",
    **kw: str,
) -> PackagedChart:
    """Source tree + package (+ sign) under ``workdir``; returns the packaged chart."""
    src = make_chart(workdir / "src", name, version, **kw)
    return package_chart(helm, src, workdir / "dist", key)
