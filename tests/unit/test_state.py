"""The rollback state (gate.state): versions, and an SQLite store that never forgets quietly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gate.state import AllowedRevision, ReleaseVersion, RollbackState, StateError

C1, C2, C3 = "1" * 40, "2" * 40, "3" * 64


def rev(commit: str, tag: str | None = None, version: str | None = None) -> AllowedRevision:
    return AllowedRevision(commit, tag, version, "sha256:" + "0" * 64, "2026-01-01T00:00:00Z")


# -- versions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [("v1.2.3", "1.2.3"), ("1.2.3", "1.2.3"), ("V2", "2"), ("v1.2.3-rc.1+b5", "1.2.3-rc.1+b5")],
)
def test_parse(name: str, text: str) -> None:
    v = ReleaseVersion.parse(name)
    assert v is not None and str(v) == text


@pytest.mark.parametrize(
    "name", ["", "v", "latest", "release-1.2", "v1.2.3.4.5", "v1..2", "v1.2-", "vv1.2", "1.2 "]
)
def test_unparsable(name: str) -> None:
    assert ReleaseVersion.parse(name) is None


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("v1.2.0", "v1.3.0"),
        ("v1.3.0", "v1.3.1"),
        ("v1.9.0", "v1.10.0"),  # numeric, not lexical
        ("v1.3.0-rc.1", "v1.3.0"),  # a pre-release is lower than its release
        ("v1.3.0-alpha", "v1.3.0-alpha.1"),
        ("v1.3.0-alpha.1", "v1.3.0-alpha.beta"),  # numeric below alphanumeric
        ("v1.3.0-beta.2", "v1.3.0-beta.11"),
        ("v1.3.0-rc.1", "v1.3.1-alpha"),
        ("v2", "v2.0.1"),
    ],
)
def test_order(low: str, high: str) -> None:
    lo, hi = ReleaseVersion.parse(low), ReleaseVersion.parse(high)
    assert lo is not None and hi is not None
    assert lo < hi and hi > lo and not hi <= lo


def test_equal_ignores_build_and_padding() -> None:
    assert ReleaseVersion.parse("v1.2") == ReleaseVersion.parse("1.2.0+build.7")
    assert ReleaseVersion.parse("v1.2.0") != ReleaseVersion.parse("v1.2.0-rc.1")


# -- the store ---------------------------------------------------------------------


def test_first_run_has_no_revision_and_creates_nothing(tmp_path: Path) -> None:
    state = RollbackState(tmp_path / "state.db")
    assert state.read("app") is None
    assert not state.path.exists()


def test_advance_then_read(tmp_path: Path) -> None:
    state = RollbackState(tmp_path / "state.db")
    state.advance("app", None, rev(C1, "v1.0.0", "1.0.0"))
    got = state.read("app")
    assert got is not None and (got.commit, got.tag, got.version) == (C1, "v1.0.0", "1.0.0")
    assert state.read("other") is None  # one row per application key
    state.advance("app", got, rev(C3))
    again = state.read("app")
    assert again is not None and (again.commit, again.tag, again.version) == (C3, None, None)
    with sqlite3.connect(state.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_advance_is_compare_and_set(tmp_path: Path) -> None:
    state = RollbackState(tmp_path / "state.db")
    state.advance("app", None, rev(C1))
    # Another run read "nothing" before C1 was recorded: it must not overwrite C1.
    with pytest.raises(StateError) as e:
        state.advance("app", None, rev(C2))
    assert e.value.reason == "state-unavailable" and "changed while" in e.value.message
    got = state.read("app")
    assert got is not None and got.commit == C1
    # A concurrent run of the same revision is not a conflict.
    state.advance("app", None, rev(C1))


def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    state = RollbackState(tmp_path / "no-such-dir" / "state.db")
    with pytest.raises(StateError):
        state.read("app")
    with pytest.raises(StateError):
        state.advance("app", None, rev(C1))


@pytest.mark.parametrize(
    "content",
    [b"this is not a database\n" * 20, b"SQLite format 3\x00" + b"\xff" * 200],
)
def test_corrupt_file_is_unavailable_never_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateError) as e:
        RollbackState(path).read("app")
    assert e.value.reason == "state-unavailable" and e.value.exit_code == 3
    with pytest.raises(StateError):
        RollbackState(path).advance("app", None, rev(C1))
    assert path.read_bytes() == content  # never "repaired" by overwriting


def test_foreign_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something_else (x)")
    with pytest.raises(StateError) as e:
        RollbackState(path).read("app")
    assert "schema" in e.value.message


def test_empty_database_is_a_first_run(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"")
    assert RollbackState(path).read("app") is None


@pytest.mark.parametrize(
    ("column", "value"),
    [("commit_id", "not-a-commit"), ("version", "latest"), ("tag", ""), ("recorded_at", b"\x00")],
)
def test_invalid_row_is_unavailable(tmp_path: Path, column: str, value: object) -> None:
    state = RollbackState(tmp_path / "state.db")
    state.advance("app", None, rev(C1, "v1.0.0", "1.0.0"))
    with sqlite3.connect(state.path) as conn:
        conn.execute(f"UPDATE last_allowed SET {column} = ?", (value,))
    with pytest.raises(StateError) as e:
        state.read("app")
    assert "invalid row" in e.value.message


def test_a_directory_in_its_place_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    with pytest.raises(StateError) as e:
        RollbackState(tmp_path / "state.db").read("app")
    assert "cannot be opened" in e.value.message


def test_unreadable_file_is_unavailable(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of their mode")
    state = RollbackState(tmp_path / "state.db")
    state.advance("app", None, rev(C1))
    state.path.chmod(0)
    try:
        with pytest.raises(StateError):
            state.read("app")
    finally:
        state.path.chmod(0o600)
