"""Fetching chart dependencies: classic HTTP(S) chart repositories and OCI registries.

The I/O side of step 2 (``gate.charts`` decides; ``gate.evidence.helm_prov``
verifies). Everything fetched here is untrusted until verified, and every
read is bounded in size and time (one :class:`Deadline` for the whole step).

HTTP(S) repositories (``repository: https://charts.example.com/stable``):

1. ``<repository>/index.yaml`` (at most :data:`MAX_INDEX_BYTES`, parsed with
   ``gate.yamlstrict``), once per repository per run;
2. the entry of exactly ``name`` at exactly ``version`` (no ranges);
3. its first URL, resolved relative to ``<repository>/`` as Helm does
   (absolute URLs are used as they are, also on other hosts: the provenance
   decides, not the location);
4. the archive (at most ``helm_prov.MAX_ARCHIVE_BYTES``); when the index
   entry has a ``digest``, the archive must hash to it (``digest-mismatch``);
5. ``<archive URL>.prov`` when provenance is wanted (404: there is none).

Plain ``http://`` is used only for hosts the policy marks ``insecure: true`` in
``spec.registries`` (the same switch as for registries; tests mark their
loopback server), for the repository, every archive URL and every redirect;
anything else must be https. URLs with user info are refused (credentials
never go into a policy URL or a report).

OCI (``repository: oci://registry.example.com/charts``): the chart is the
repository ``<host>/<path>/<name>``, the tag is ``version`` with ``+`` → ``_``;
the manifest (digest computed from its bytes) must have the Helm config type
(``application/vnd.cncf.helm.config.v1+json``), exactly one chart layer
(``…chart.content.v1.tar+gzip``), at most one provenance layer and nothing
else; the config's name/version must be the dependency's. Blobs are checked
against their digests by :class:`~gate.sources.registry.RegistryClient`.

Errors: could not obtain → ``FetchError`` (exit 3; timeouts, refused
connections, 5xx, an index or archive the repository promised but does not
serve); the repository says something wrong → ``VerificationError`` (deny):
``chart-not-found`` (no such name/version), ``malformed-index``,
``digest-mismatch``, ``chart-mismatch``, ``malformed-chart``,
``insecure-repository``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from gate.errors import DigestMismatchError, FetchError, GateError, VerificationError
from gate.evidence.helm_prov import (
    MAX_ARCHIVE_BYTES,
    MAX_PROVENANCE_BYTES,
    ChartMismatchError,
    MalformedChartError,
)
from gate.policy.model import RegistryConfig
from gate.sources.credentials import canonical_host
from gate.sources.registry import Deadline, RegistryClient
from gate.sources.registry_http import Http, Reply, RetryPolicy
from gate.sources.registry_types import IMAGE_MANIFEST_TYPES, load_registry_json
from gate.yamlstrict import load_all

__all__ = [
    "HELM_CHART_MEDIA_TYPE",
    "HELM_CONFIG_MEDIA_TYPE",
    "HELM_PROV_MEDIA_TYPE",
    "MAX_INDEX_BYTES",
    "ChartRepositories",
    "FetchedChart",
    "oci_repo_name",
    "oci_tag",
]

HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
HELM_PROV_MEDIA_TYPE = "application/vnd.cncf.helm.chart.provenance.v1.prov"
MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_REQUEST_TIMEOUT_S = 30.0
USER_AGENT = "gitops-gate/0.1 (+chart repository client)"
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ChartNotFoundError(VerificationError):
    reason = "chart-not-found"


class MalformedIndexError(VerificationError):
    reason = "malformed-index"


class InsecureRepositoryError(VerificationError):
    reason = "insecure-repository"


@dataclass(frozen=True)
class FetchedChart:
    """A chart archive as received (untrusted), and where it and its evidence came from."""

    name: str
    version: str
    archive: bytes = b""
    source: str = ""  # https://…/name-version.tgz or oci://host/path/name@sha256:…
    provenance: bytes | None = None
    provenance_uri: str | None = None
    manifest_digest: str | None = None  # OCI: the chart manifest (what cosign signs)
    repo_name: str | None = None  # OCI: host/path/name

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.archive).hexdigest()


def oci_repo_name(repository: str, name: str) -> str:
    """``oci://host/path`` + ``name`` → ``host/path/name`` (the registry repository)."""
    rest = repository.removeprefix("oci://").strip("/")
    return f"{rest}/{name}"


def oci_tag(version: str) -> str:
    """Helm's tag for a chart version: ``+`` is not allowed in OCI tags, ``_`` stands in."""
    return version.replace("+", "_")


class ChartRepositories:
    """Fetches chart dependencies; ``async with ChartRepositories(...) as repos:``.

    ``registry`` is the verifying OCI client (shared with signature discovery);
    ``transport`` is the one seam for tests (both HTTP repositories and OCI).
    """

    def __init__(
        self,
        configs: Sequence[RegistryConfig] = (),
        *,
        deadline: Deadline,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        concurrency: int = 8,
        docker_config: str | None = None,
    ) -> None:
        self._configs = {canonical_host(c.host): c for c in configs}
        self.deadline = deadline
        self._retry = retry or RetryPolicy()
        self.registry = RegistryClient(
            configs,
            transport=transport,
            concurrency=concurrency,
            deadline=deadline,
            docker_config=docker_config,
            retry=self._retry,
            request_timeout_s=request_timeout_s,
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(request_timeout_s, connect=min(10.0, request_timeout_s)),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._http = Http(
            self._client,
            deadline=deadline,
            semaphore=asyncio.Semaphore(concurrency),
            retry=self._retry,
            plain_http_ok=self._plain_http_ok,
        )
        self._indexes: dict[str, asyncio.Task[dict[str, Any]]] = {}

    async def __aenter__(self) -> ChartRepositories:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in self._indexes.values():
            task.cancel()
        await self._client.aclose()
        await self.registry.aclose()

    def _plain_http_ok(self, url: httpx.URL) -> bool:
        config = self._configs.get(canonical_host(url.netloc.decode("ascii")))
        return config is not None and config.insecure

    # --- HTTP(S) repositories -------------------------------------------------------------------

    def _check_url(self, url: httpx.URL, what: str) -> None:
        if url.scheme not in ("http", "https") or not url.host:
            raise InsecureRepositoryError(f"{what}: {url} is not an http(s) URL")
        if url.userinfo:
            raise InsecureRepositoryError(
                f"{what}: the URL carries credentials",
                hint="chart repository credentials in URLs are not supported",
            )
        if url.scheme == "http" and not self._plain_http_ok(url):
            raise InsecureRepositoryError(
                f"{what}: {url} is plain http",
                expected="https, or the host listed with insecure: true in spec.registries",
                hint="serve the repository over https (plain http only for test hosts)",
            )

    async def _get(self, url: httpx.URL, max_bytes: int, what: str) -> Reply:
        reply = await self._http.request("GET", url, headers={}, max_bytes=max_bytes, what=what)
        if reply.url != url:
            self._check_url(reply.url, f"{what} (redirected)")  # plain http stays opt-in
        return reply

    async def index(self, repository: str) -> dict[str, Any]:
        """The repository's parsed ``index.yaml`` (fetched once per run)."""
        task = self._indexes.get(repository)
        if task is None:
            task = self._indexes[repository] = asyncio.ensure_future(self._fetch_index(repository))
        return await asyncio.shield(task)

    async def _fetch_index(self, repository: str) -> dict[str, Any]:
        base = httpx.URL(repository.rstrip("/") + "/")
        url = base.join("index.yaml")
        what = f"chart repository index {url}"
        self._check_url(url, what)
        reply = await self._get(url, MAX_INDEX_BYTES, what)
        if reply.status != 200:
            raise FetchError(
                f"{what}: HTTP {reply.status}",
                reason="chart-repository-error",
                found=reply.text_excerpt() or None,
                hint="check the dependency's repository URL",
            )
        try:
            docs = load_all(reply.body, source=what, max_bytes=MAX_INDEX_BYTES)
        except GateError as e:
            raise MalformedIndexError(f"{what} is not valid YAML", found=e.message) from None
        if len(docs) != 1 or not isinstance(docs[0].get("entries"), dict):
            raise MalformedIndexError(f"{what} has no 'entries' mapping")
        return docs[0]

    async def fetch_http(
        self, repository: str, name: str, version: str, *, want_provenance: bool
    ) -> FetchedChart:
        """The archive of ``name`` at ``version`` from an HTTP(S) repository (and its .prov)."""
        index = await self.index(repository)
        entry = _index_entry(index, repository, name, version)
        urls = entry.get("urls")
        if not isinstance(urls, list) or not urls or not isinstance(urls[0], str):
            raise MalformedIndexError(f"index entry {name} {version} in {repository} has no URL")
        url = httpx.URL(repository.rstrip("/") + "/").join(urls[0])
        what = f"chart archive {url}"
        self._check_url(url, what)
        reply = await self._get(url, MAX_ARCHIVE_BYTES, what)
        if reply.status != 200:
            raise FetchError(
                f"{what}: HTTP {reply.status} (the index lists it)",
                reason="chart-repository-error",
                found=reply.text_excerpt() or None,
            )
        archive = reply.body
        digest = hashlib.sha256(archive).hexdigest()
        listed = entry.get("digest")
        if isinstance(listed, str) and _HEX64.fullmatch(listed) and listed != digest:
            raise DigestMismatchError(
                f"{what} is not the archive the repository index lists",
                found=f"sha256:{digest}",
                expected=f"sha256:{listed} (index.yaml)",
                hint="the repository serves other bytes than it indexed; re-index or investigate",
            )
        prov: bytes | None = None
        prov_url = url.copy_with(path=url.path + ".prov")
        if want_provenance:
            prov = await self._provenance(prov_url)
        return FetchedChart(
            name,
            version,
            archive,
            str(url),
            prov,
            str(prov_url) if prov is not None else None,
        )

    async def _provenance(self, url: httpx.URL) -> bytes | None:
        what = f"provenance {url}"
        self._check_url(url, what)
        reply = await self._get(url, MAX_PROVENANCE_BYTES, what)
        if reply.status in (404, 410):
            return None
        if reply.status != 200:
            raise FetchError(
                f"{what}: HTTP {reply.status}",
                reason="chart-repository-error",
                found=reply.text_excerpt() or None,
            )
        return reply.body

    # --- OCI ------------------------------------------------------------------------------------

    async def fetch_oci(
        self, repository: str, name: str, version: str, *, want_provenance: bool
    ) -> FetchedChart:
        """The chart ``name`` at ``version`` from ``oci://host/path``, by its manifest."""
        repo_name = oci_repo_name(repository, name)
        tag = oci_tag(version)
        where = f"oci://{repo_name}:{tag}"
        if not _TAG.fullmatch(tag):
            raise ChartNotFoundError(f"{where}: version {version!r} is not a valid OCI tag")
        try:
            manifest = await self.registry.get_manifest_if_exists(repo_name, tag)
        except ValueError as e:
            raise ChartNotFoundError(f"{where}: not a registry repository ({e})") from None
        if manifest is None:
            raise ChartNotFoundError(
                f"{where} does not exist",
                hint="check the dependency's repository, name and version",
            )
        if manifest.media_type not in IMAGE_MANIFEST_TYPES:
            raise MalformedChartError(
                f"{where} is not a Helm chart manifest", found=manifest.media_type
            )
        config = manifest.config()
        if config is None or config.media_type != HELM_CONFIG_MEDIA_TYPE:
            raise MalformedChartError(
                f"{where} is not a Helm chart",
                found=config.media_type if config is not None else "no config",
                expected=HELM_CONFIG_MEDIA_TYPE,
            )
        layers = manifest.layers()
        charts = [x for x in layers if x.media_type == HELM_CHART_MEDIA_TYPE]
        provs = [x for x in layers if x.media_type == HELM_PROV_MEDIA_TYPE]
        others = [x.media_type for x in layers if x not in charts and x not in provs]
        if len(charts) != 1 or len(provs) > 1 or others:
            raise MalformedChartError(
                f"{where}: a Helm chart has one chart layer and at most one provenance layer",
                found=", ".join(x.media_type for x in layers) or "no layers",
            )
        meta = load_registry_json(
            await self.registry.get_blob(repo_name, config.digest, max_bytes=MAX_CONFIG_BYTES),
            what=f"{where} config",
        )
        if (meta.get("name"), meta.get("version")) != (name, version):
            raise ChartMismatchError(
                f"{where}: the manifest's Helm config names another chart",
                found=f"{meta.get('name')} {meta.get('version')}",
                expected=f"{name} {version}",
            )
        archive = await self.registry.get_blob(
            repo_name, charts[0].digest, max_bytes=MAX_ARCHIVE_BYTES
        )
        prov: bytes | None = None
        prov_uri: str | None = None
        if want_provenance and provs:
            prov = await self.registry.get_blob(
                repo_name, provs[0].digest, max_bytes=MAX_PROVENANCE_BYTES
            )
            prov_uri = f"oci://{repo_name}@{provs[0].digest}"
        return FetchedChart(
            name,
            version,
            archive,
            f"oci://{repo_name}@{manifest.digest}",
            prov,
            prov_uri,
            manifest.digest,
            repo_name,
        )


def _index_entry(index: dict[str, Any], repository: str, name: str, version: str) -> dict[str, Any]:
    entries = index["entries"].get(name)
    if entries is None:
        raise ChartNotFoundError(
            f"chart {name} is not in the index of {repository}",
            hint="check the dependency's name and repository",
        )
    if not isinstance(entries, list):
        raise MalformedIndexError(f"index entries for {name} in {repository} are not a list")
    found = [
        e
        for e in entries
        if isinstance(e, dict) and e.get("name") == name and e.get("version") == version
    ]
    if not found:
        listed = sorted(
            str(e.get("version")) for e in entries if isinstance(e, dict) and "version" in e
        )
        raise ChartNotFoundError(
            f"chart {name} {version} is not in the index of {repository}",
            found=", ".join(listed[:20]) or "no versions",
            expected=version,
        )
    if len(found) > 1:
        raise MalformedIndexError(f"the index of {repository} lists {name} {version} twice")
    return found[0]
