"""A classic (HTTP) Helm chart repository on a free loopback port.

Serves a directory: ``index.yaml`` (made by the real ``helm repo index``),
``<name>-<version>.tgz`` and ``.prov``. It runs in a daemon thread of the test
process, binds 127.0.0.1 port 0 (never a fixed port, so parallel workers
cannot collide) and records every request path, so a test can assert that a
client fetched the provenance file, or fetched nothing at all.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from testkit.helmcharts import Helm, PackagedChart


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server.requests.append(self.path)
        super().do_HEAD()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean; requests are recorded instead

    def end_headers(self) -> None:
        # Files change between requests in tests (re-index, tampering).
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    requests: list[str]


class ChartRepoServer:
    """``with ChartRepoServer(helm) as repo: repo.add(chart); repo.url``."""

    def __init__(self, helm: Helm, directory: Path | None = None) -> None:
        self.helm = helm
        self._owns_dir = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix="chartrepo-")) if directory is None else directory
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> ChartRepoServer:
        if self._server is not None:
            raise RuntimeError("chart repository already started")
        handler = partial(_Handler, directory=str(self.directory))
        server = _Server(("127.0.0.1", 0), handler)
        server.requests = []
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # fast shutdown() in teardown
            name=f"chartrepo:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self.reindex()  # an empty but valid index.yaml from the start
        return self

    def stop(self) -> None:
        """Stop serving and remove the directory (if we created it). Idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._owns_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> ChartRepoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("chart repository not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def chart_url(self, chart: PackagedChart) -> str:
        return f"{self.url}/{chart.filename}"

    @property
    def requests(self) -> list[str]:
        """Request paths served so far, in order."""
        return list(self._server.requests) if self._server is not None else []

    def clear_requests(self) -> None:
        if self._server is not None:
            self._server.requests.clear()

    # -- content ----------------------------------------------------------------

    def add(self, chart: PackagedChart, *, with_prov: bool = True) -> str:
        """Copy the chart (and its .prov) in, re-index; return the chart URL."""
        shutil.copy2(chart.tgz, self.directory / chart.tgz.name)
        if with_prov and chart.prov is not None:
            shutil.copy2(chart.prov, self.directory / chart.prov.name)
        self.reindex()
        return self.chart_url(chart)

    def put_file(self, name: str, data: bytes) -> None:
        """Serve arbitrary bytes under ``name`` (e.g. a tampered .tgz); no re-index."""
        (self.directory / name).write_bytes(data)

    def reindex(self) -> None:
        """``helm repo index DIR --url URL``: absolute URLs to this server."""
        self.helm.run("repo", "index", str(self.directory), "--url", self.url)

    def index_yaml(self) -> str:
        return (self.directory / "index.yaml").read_text()
