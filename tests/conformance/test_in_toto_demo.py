"""The in-toto demo (in-toto 3.1.0 ``tests/demo_files``): verifies; refused with inspections.

The template is unsigned and has no expiry: the test signs a copy with the
demo's Ed25519 key (the policy's layout key) in a temporary directory. With
its ``untar`` inspection the layout is refused before anything runs; with the
inspection removed and re-signed, the two demo links verify against it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gate.evidence.intoto import verify_layout
from gate.evidence.statement import AttestationError
from tests.conformance._vectors import VECTORS

DEMO = VECTORS / "in-toto-demo"
pytestmark = pytest.mark.skipif(
    not DEMO.is_dir(), reason=f"in-toto demo vectors not found at {DEMO} (set GATE_VECTORS)"
)


def _signed_layout(tmp: Path, *, keep_inspections: bool) -> tuple[Path, object]:
    from in_toto.models.metadata import Metablock
    from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

    doc = json.loads((DEMO / "demo.layout.template").read_text())
    if not keep_inspections:
        doc["signed"]["inspect"] = []
    doc["signed"]["expires"] = (datetime.now(UTC) + timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    template = tmp / "template.json"
    template.write_text(json.dumps(doc))
    block = Metablock.load(str(template))
    priv = load_pem_private_key((DEMO / "ed25519_private_unencrypted.pem").read_bytes(), None)
    pub = priv.public_key()
    block.create_signature(CryptoSigner(priv, SSlibKey.from_crypto(pub, scheme="ed25519")))
    path = tmp / "root.layout"
    block.dump(str(path))
    return path, pub


def _links(tmp: Path) -> Path:
    d = tmp / "links"
    d.mkdir()
    for p in DEMO.glob("*.link"):
        shutil.copy(p, d / p.name)
    return d


def test_demo_layout_with_inspections_is_refused(tmp_path: Path) -> None:
    layout, pub = _signed_layout(tmp_path, keep_inspections=True)
    with pytest.raises(AttestationError) as e:
        verify_layout(layout, {"owner": pub}, _links(tmp_path))  # type: ignore[dict-item]
    assert e.value.reason == "layout-inspections-refused"
    assert "untar" in (e.value.found or "")


def test_demo_layout_verifies_without_inspections(tmp_path: Path) -> None:
    layout, pub = _signed_layout(tmp_path, keep_inspections=False)
    verify_layout(layout, {"owner": pub}, _links(tmp_path))  # type: ignore[dict-item]


def test_demo_layout_signed_by_another_key_fails(tmp_path: Path) -> None:
    from gate.signing import generate_key_pair

    layout, _ = _signed_layout(tmp_path, keep_inspections=False)
    other = generate_key_pair().public_key
    with pytest.raises(AttestationError) as e:
        verify_layout(layout, {"other": other}, _links(tmp_path))
    assert e.value.reason == "layout-invalid"


def test_demo_missing_link_fails(tmp_path: Path) -> None:
    layout, pub = _signed_layout(tmp_path, keep_inspections=False)
    links = _links(tmp_path)
    next(links.glob("package.*.link")).unlink()
    with pytest.raises(AttestationError) as e:
        verify_layout(layout, {"owner": pub}, links)  # type: ignore[dict-item]
    assert e.value.reason == "layout-invalid"
