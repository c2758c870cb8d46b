"""slsa-verifier's regression table through ``gate verify-provenance``, offline.

``slsa-verifier/expectations.json``: 42 cases (generic and Go builders,
v2.1.0), each run with the builder id unset, equal to the trusted builder,
``@v2.1.0`` and ``@refs/tags/v2.1.0`` (168 outcomes). A case that names its
own ``builder_id`` (the untrusted one) is run, as upstream, with that id in
place of the trusted builder's for all four variants (unset = equal = the
case's id). The expected error names are slsa-verifier's; ours are the same
words as reason codes. ``slsa-verifier/bundle``: provenance as Sigstore
bundles (v0.1 with intoto 0.0.2 entries and only an inclusion promise, v0.3
with dsse entries); only the signature and log evidence are in question.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gate.cli import verify_provenance as vp
from tests.conformance._vectors import VECTORS, absent, run_verb

SV = VECTORS / "slsa-verifier"
VARIANTS = ("unset", "equal", "at-version", "at-ref")


def _digests() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for d in ("gha_generic", "gha_go"):
        for line in (SV / d / "artifacts.sha256").read_text().splitlines():
            h, name = line.split()
            out[(d, name)] = h
    return out


def _cases() -> list[object]:
    if not (SV / "expectations.json").is_file():
        return absent(SV, 2)
    doc = json.loads((SV / "expectations.json").read_text())
    out: list[object] = []
    for i, case in enumerate(doc["cases"]):
        builder = case.get("builder_id") or doc["trusted_builders"][case["builder_dir"]]
        for variant in VARIANTS:
            bid = {
                "unset": case.get("builder_id"),
                "equal": builder,
                "at-version": builder + "@v2.1.0",
                "at-ref": builder + "@refs/tags/v2.1.0",
            }[variant]
            slug = case["name"].replace(" ", "-")
            out.append(
                pytest.param(case, bid, id=f"{i:02d}-{case['builder_dir']}-{slug}-{variant}")
            )
    return out


def _argv(case: dict[str, Any], builder_id: str | None) -> list[str]:
    digest = _digests()[(case["builder_dir"], case["artifact"])]
    argv = [
        f"sha256:{digest}",
        "--provenance-path",
        str(SV / case["provenance"]),
        "--source-uri",
        case["source_uri"],
    ]
    if builder_id is not None:
        argv += ["--builder-id", builder_id]
    for key, flag in (
        ("branch", "--source-branch"),
        ("tag", "--source-tag"),
        ("versioned_tag", "--source-versioned-tag"),
    ):
        if case.get(key) is not None:
            argv += [flag, case[key]]
    return argv


@pytest.mark.parametrize(("case", "builder_id"), _cases())
def test_expectation(
    case: dict[str, Any] | None, builder_id: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert case is not None
    code = run_verb(vp.add_arguments, vp.run, _argv(case, builder_id))
    err = capsys.readouterr().err
    if case["expected_error"] is None:
        assert code == 0, err
        assert "PASSED" in err
    else:
        assert code == 1, err
        assert f"({case['expected_error']})" in err, err


BUNDLE_CASES = {
    "valid.intoto.sigstore": True,
    "valid-v0.3.intoto.sigstore": True,
    "mismatch-tlog.intoto.sigstore": False,
    "invalid-set.intoto.sigstore": False,
    "invalid-dsse-sig.intoto.sigstore": False,
}


def _bundle_cases() -> list[object]:
    if not (SV / "bundle").is_dir():
        return absent(SV / "bundle", 2)
    return [pytest.param(name, ok, id=name) for name, ok in BUNDLE_CASES.items()]


@pytest.mark.parametrize(("name", "ok"), _bundle_cases())
def test_bundle(name: str | None, ok: bool) -> None:
    # As upstream's bundle tests: the signature and the log evidence only.
    import datetime as dt

    from gate.errors import VerificationError
    from gate.evidence.attestations import PolicySigner, read_material_file, verify_envelope
    from gate.policy.model import KeylessIdentity
    from gate.sources.trustroot import load_trust_root

    assert name is not None
    root = load_trust_root(None)
    signer = PolicySigner(
        "gha",
        keyless=KeylessIdentity.model_validate(
            {"issuer": vp.GITHUB_ISSUER, "subjectRegExp": r"https://github\.com/.+"}
        ),
    )
    [material] = read_material_file((SV / "bundle" / name).read_bytes(), name)
    if ok:
        env = verify_envelope(material, signer, lambda: root, dt.datetime.now(dt.UTC))
        assert env.payload_type == "application/vnd.in-toto+json"
    else:
        with pytest.raises(VerificationError) as e:
            verify_envelope(material, signer, lambda: root, dt.datetime.now(dt.UTC))
        assert e.value.reason in {"tlog-invalid", "bad-signature"}


def test_extra_bundle_never_crashes(capsys: pytest.CaptureFixture[str]) -> None:
    """``attestation.intoto.sigstore`` has no stated outcome: a verdict, never a crash."""
    path = SV / "bundle" / "attestation.intoto.sigstore"
    if not path.is_file():
        pytest.skip(f"vectors not found at {path} (set GATE_VECTORS)")
    code = run_verb(
        vp.add_arguments,
        vp.run,
        ["sha256:" + "0" * 64, "--provenance-path", str(path), "--source-uri", "github.com/x/y"],
    )
    assert code in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


def test_vectors_are_not_copied() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert not list(repo.glob("**/*.intoto.jsonl")), "upstream vectors must not be copied"
