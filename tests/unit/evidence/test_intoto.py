"""in-toto layouts minted by the testkit: inspections refused by default, run only when allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.evidence.intoto import verify_layout
from gate.evidence.statement import AttestationError
from gate.signing import KeyKind, generate_key_pair
from testkit.attestations import make_in_toto_chain

OWNER, CODER, PACKAGER = (generate_key_pair(KeyKind.ED25519) for _ in range(3))


def _chain(tmp: Path, **kw: object):  # type: ignore[no-untyped-def]
    return make_in_toto_chain(tmp, owner=OWNER, coder=CODER, packager=PACKAGER, **kw)  # type: ignore[arg-type]


def test_chain_verifies(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    verify_layout(c.layout_path, {"owner": OWNER.public_key}, tmp_path)


def test_inspections_refused_unless_allowed(tmp_path: Path) -> None:
    c = _chain(tmp_path, inspections=True)
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, {"owner": OWNER.public_key}, tmp_path)
    assert e.value.reason == "layout-inspections-refused"
    verify_layout(
        c.layout_path,
        {"owner": OWNER.public_key},
        tmp_path,
        allow_inspections=True,
        workdir=tmp_path,
    )


def test_tampered_product_fails_when_inspected(tmp_path: Path) -> None:
    c = _chain(tmp_path, inspections=True, tamper_product=True)
    with pytest.raises(AttestationError) as e:
        verify_layout(
            c.layout_path,
            {"owner": OWNER.public_key},
            tmp_path,
            allow_inspections=True,
            workdir=tmp_path,
        )
    assert e.value.reason == "layout-invalid"


def test_layout_by_another_key(tmp_path: Path) -> None:
    c = _chain(tmp_path)
    with pytest.raises(AttestationError) as e:
        verify_layout(c.layout_path, {"x": CODER.public_key}, tmp_path)
    assert e.value.reason == "layout-invalid"


def test_unreadable_layout(tmp_path: Path) -> None:
    (tmp_path / "bad.layout").write_text("{")
    with pytest.raises(AttestationError) as e:
        verify_layout(tmp_path / "bad.layout", {"owner": OWNER.public_key}, tmp_path)
    assert e.value.reason == "malformed-statement"
