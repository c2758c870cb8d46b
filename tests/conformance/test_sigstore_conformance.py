"""sigstore-conformance ``bundle-verify``: every case through ``gate verify-blob``.

The vectors are upstream data (sigstore/sigstore-conformance), read from
``$GATE_VECTORS`` (default ``../shared/vectors`` beside the repository) and
never copied into it; when they are absent every case is skipped with the
reason shown. Per-case files (upstream README): ``bundle.sigstore.json``,
optional ``artifact`` (default ``../a.txt``), ``identity``, ``issuer``,
``key.pub`` (verify with the key instead of an identity), ``trusted_root.json``
(default: the public-good root). A directory ending in ``_fail`` must be
rejected, every other one accepted.

Known gaps are strict xfails (an unexpected pass fails the run, so the list
cannot go stale), never skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.cli import main

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("GATE_VECTORS", REPO.parent / "shared" / "vectors"))
CASES_DIR = VECTORS / "sigstore-conformance" / "bundle-verify"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"

#: Cases we cannot get right yet, and why (strict xfail: fixing one fails the run).
KNOWN_GAPS: dict[str, str] = {
    "trust-root-tsa-validity-end-inclusive": (
        "sigstore-python 4.5.1 treats a TSA's validFor.end as exclusive; the spec's TimeRange "
        "is closed, so a timestamp exactly at the end is valid"
    ),
}


def _cases() -> list[object]:
    if not CASES_DIR.is_dir():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f"sigstore-conformance vectors not found at {CASES_DIR} "
                    "(set GATE_VECTORS)"
                ),
                id="vectors-absent",
            )
        ]
    out: list[object] = []
    for case in sorted(p for p in CASES_DIR.iterdir() if p.is_dir()):
        marks = []
        if case.name in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[case.name]))
        out.append(pytest.param(case, marks=marks, id=case.name))
    return out


def _argv(case: Path) -> list[str]:
    artifact = case / "artifact"
    if not artifact.exists():
        artifact = CASES_DIR / "a.txt"
    argv = ["verify-blob", str(artifact), "--bundle", str(case / "bundle.sigstore.json")]
    if (case / "trusted_root.json").exists():
        argv += ["--trusted-root", str(case / "trusted_root.json")]
    if (case / "key.pub").exists():
        return [*argv, "--key", str(case / "key.pub")]
    identity = (case / "identity").read_text().strip() if (case / "identity").exists() else None
    issuer = (case / "issuer").read_text().strip() if (case / "issuer").exists() else None
    return [
        *argv,
        "--certificate-identity",
        identity or DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        issuer or DEFAULT_ISSUER,
    ]


@pytest.mark.parametrize("case", _cases())
def test_bundle_verify(case: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_argv(case))
    err = capsys.readouterr().err
    if case.name.endswith("_fail"):
        assert code != 0, f"accepted a bundle that must be rejected:\n{err}"
        assert code != 4, f"rejected, but by an internal error (a bug):\n{err}"
    else:
        assert code == 0, f"rejected a valid bundle (exit {code}):\n{err}"


INTOTO_CASE = CASES_DIR / "intoto-with-custom-trust-root"


@pytest.mark.skipif(
    not INTOTO_CASE.is_dir(), reason=f"no vectors at {CASES_DIR} (set GATE_VECTORS)"
)
@pytest.mark.parametrize("tamper", ["signature", "payload", "identity"])
def test_intoto_entry_own_path_denies_forgeries(
    tamper: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The own path for intoto 0.0.2 bundles (which sigstore-python refuses) must not
    be a way around verification: a changed signature, payload or identity is denied."""
    import base64
    import json

    bundle = json.loads((INTOTO_CASE / "bundle.sigstore.json").read_text())
    env = bundle["dsseEnvelope"]
    argv = _argv(INTOTO_CASE)
    if tamper == "signature":
        sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        sig[-1] ^= 1
        env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    elif tamper == "payload":
        payload = base64.b64decode(env["payload"]).replace(b"}", b" }", 1)
        env["payload"] = base64.b64encode(payload).decode()
    else:
        argv[argv.index("--certificate-identity") + 1] = "https://example.com/someone-else"
    forged = tmp_path / "bundle.json"
    forged.write_text(json.dumps(bundle))
    argv[argv.index("--bundle") + 1] = str(forged)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
