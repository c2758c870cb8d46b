"""`--attestations` and `$ARGOCD_ENV_GATE_ATTESTATIONS` reach the engine, inside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.cli.generate import attestation_files
from gate.errors import UsageError


def _checkout(tmp_path: Path) -> Path:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    app = tmp_path / "repo" / "apps" / "web"
    app.mkdir(parents=True)
    (tmp_path / "repo" / "attestations").mkdir()
    (tmp_path / "repo" / "attestations" / "app.jsonl").write_text("{}")
    (app / "prov.json").write_text("{}")
    return app


def test_paths_relative_to_the_app_directory(tmp_path: Path) -> None:
    app = _checkout(tmp_path)
    got = attestation_files(app, "prov.json, ../../attestations/app.jsonl", "apps/web")
    assert got == (app / "prov.json", app / "../../attestations/app.jsonl")
    assert attestation_files(app, None, "apps/web") == ()


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../outside.json", "link.json"])
def test_paths_outside_the_checkout_are_refused(tmp_path: Path, name: str) -> None:
    app = _checkout(tmp_path)
    (tmp_path / "outside.json").write_text("{}")
    os.symlink(tmp_path / "outside.json", app / "link.json")
    with pytest.raises(UsageError) as e:
        attestation_files(app, name, "apps/web")
    assert "outside the checkout" in e.value.message


def test_generate_passes_the_files_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gate.cli.generate as generate

    app = _checkout(tmp_path)
    seen: list[object] = []

    class Stop(Exception):
        pass

    class FakeEngine:
        def __init__(self, *a: object) -> None:
            pass

        def run(self, request: object) -> object:
            seen.append(request)
            raise Stop

    monkeypatch.setattr(generate, "load_policy", lambda p: object())
    monkeypatch.setattr(generate, "prepare_vsa", lambda *a, **k: None)
    monkeypatch.setattr(generate, "Engine", FakeEngine)
    monkeypatch.setattr(generate, "default_verifiers", lambda: None)
    monkeypatch.setenv("ARGOCD_ENV_GATE_ATTESTATIONS", "prov.json")
    monkeypatch.setenv("ARGOCD_APP_SOURCE_PATH", "apps/web")

    class Args:
        path = str(app)
        report = None

    with pytest.raises(Stop):
        generate.run(Args())  # type: ignore[arg-type]
    assert seen[0].attestation_files == (app / "prov.json",)  # type: ignore[attr-defined]
