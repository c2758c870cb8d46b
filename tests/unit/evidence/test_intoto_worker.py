"""Layouts with inspections run in a child process: the gate's cwd never moves; a hang is killed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.errors import EvidenceError
from gate.evidence.intoto import verify_layout
from gate.evidence.statement import AttestationError
from gate.signing import KeyKind, generate_key_pair
from testkit.attestations import make_in_toto_chain, sslib_signer

OWNER, CODER, PACKAGER = (generate_key_pair(KeyKind.ED25519) for _ in range(3))
KEYS = {"owner": OWNER.public_key}


def _no_chdir(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: object) -> None:
        raise AssertionError(f"the gate process changed its working directory to {path}")

    monkeypatch.setattr(os, "chdir", refuse)


def test_inspections_verify_without_moving_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = make_in_toto_chain(
        tmp_path / "chain", owner=OWNER, coder=CODER, packager=PACKAGER, inspections=True
    )
    before = os.getcwd()
    _no_chdir(monkeypatch)
    verify_layout(
        chain.layout_path,
        KEYS,
        chain.directory,
        allow_inspections=True,
        workdir=chain.directory,
    )
    assert os.getcwd() == before
    # The untar inspection ran in the workdir (the child's cwd), not in ours.
    assert (chain.directory / "foo.py").is_file()
    assert not (Path(before) / "foo.py").exists() or Path(before) == chain.directory


def test_tampered_product_is_caught_by_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = make_in_toto_chain(
        tmp_path / "chain",
        owner=OWNER,
        coder=CODER,
        packager=PACKAGER,
        inspections=True,
        tamper_product=True,
    )
    _no_chdir(monkeypatch)
    with pytest.raises(AttestationError) as e:
        verify_layout(
            chain.layout_path,
            KEYS,
            chain.directory,
            allow_inspections=True,
            workdir=chain.directory,
        )
    assert e.value.reason == "layout-invalid"
    assert "RuleVerificationError" in e.value.message


def _resign_with_inspection(chain_layout: object, path: Path, run: list[str]) -> None:
    layout = chain_layout
    layout.signed.inspect[0].run = run  # type: ignore[attr-defined]
    layout.signatures = []  # type: ignore[attr-defined]
    layout.create_signature(sslib_signer(OWNER))  # type: ignore[attr-defined]
    layout.dump(str(path))  # type: ignore[attr-defined]


def test_hanging_inspection_hits_the_time_limit(tmp_path: Path) -> None:
    chain = make_in_toto_chain(
        tmp_path / "chain", owner=OWNER, coder=CODER, packager=PACKAGER, inspections=True
    )
    # A forked background child keeps the pipes open: in-toto's own timeout would wait on it.
    _resign_with_inspection(chain.layout, chain.layout_path, ["sh", "-c", "sleep 600 & sleep 600"])
    with pytest.raises(EvidenceError) as e:
        verify_layout(
            chain.layout_path,
            KEYS,
            chain.directory,
            allow_inspections=True,
            workdir=chain.directory,
            timeout_s=3,
        )
    assert e.value.reason == "layout-inspection-timeout"
    assert e.value.exit_code == 3  # could not decide: never an allow


def test_failing_inspection_is_a_deny(tmp_path: Path) -> None:
    chain = make_in_toto_chain(
        tmp_path / "chain", owner=OWNER, coder=CODER, packager=PACKAGER, inspections=True
    )
    _resign_with_inspection(chain.layout, chain.layout_path, ["false"])
    with pytest.raises(AttestationError) as e:
        verify_layout(
            chain.layout_path,
            KEYS,
            chain.directory,
            allow_inspections=True,
            workdir=chain.directory,
        )
    assert e.value.reason == "layout-invalid"


def test_child_sees_a_clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chain = make_in_toto_chain(
        tmp_path / "chain", owner=OWNER, coder=CODER, packager=PACKAGER, inspections=True
    )
    # The inspection fails if the gate's own environment leaks into it.
    monkeypatch.setenv("GATE_SECRET_TOKEN", "s3cret")
    _resign_with_inspection(
        chain.layout, chain.layout_path, ["sh", "-c", 'test -z "$GATE_SECRET_TOKEN"']
    )
    # Verifies: the inspection exited 0, so the variable was not visible to it.
    verify_layout(
        chain.layout_path, KEYS, chain.directory, allow_inspections=True, workdir=chain.directory
    )
