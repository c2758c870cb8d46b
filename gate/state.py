"""Rollback state: the last allowed revision per application (``spec.source.git.rollback``).

A signed old release is still validly signed, so signatures alone cannot stop a replay
(Argo CD's ``targetRevision`` moved back to ``v1.0.0`` after ``v1.2.0`` shipped a fix).
The gate keeps, per application key, the revision it last ALLOWED, and the next run must
descend from it (or carry a version that is not lower): ADR 12.

The store is one small embedded SQLite file (stdlib ``sqlite3``): WAL journal, a busy
timeout for concurrent runs of the Argo CD repo-server, one row per application key.

- A missing file whose directory exists: no revision allowed yet (the first allow
  creates it). A missing directory is a misconfiguration, not a first run.
- A file that cannot be opened, is not a database, has a schema this gate does not know
  or a row that does not validate: :class:`StateError` (exit 3, could not decide), never
  "no previous revision", which would silently disable the protection.
- :meth:`RollbackState.advance` is a compare-and-set: it writes only when the row is still
  the one the run compared against (or already holds the same revision), so two runs of
  the same application can never move the state backwards.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import total_ordering
from pathlib import Path
from urllib.parse import quote

from gate.errors import EvidenceError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0
_TABLE = "last_allowed"
_SCHEMA = """
CREATE TABLE last_allowed (
    app_key       TEXT PRIMARY KEY NOT NULL,
    commit_id     TEXT NOT NULL,
    tag           TEXT,
    version       TEXT,
    policy_digest TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
) WITHOUT ROWID
"""
_SELECT = (
    "SELECT commit_id, tag, version, policy_digest, recorded_at FROM last_allowed WHERE app_key = ?"
)
_UPSERT = (
    "INSERT OR REPLACE INTO last_allowed "
    "(app_key, commit_id, tag, version, policy_digest, recorded_at) VALUES (?, ?, ?, ?, ?, ?)"
)
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_VERSION = re.compile(
    r"(?P<nums>[0-9]{1,18}(?:\.[0-9]{1,18}){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


class StateError(EvidenceError):
    """The rollback state could not be read or written: the gate cannot decide."""

    reason = "state-unavailable"


# -- versions ----------------------------------------------------------------------


@total_ordering
@dataclass(frozen=True)
class ReleaseVersion:
    """A semver-ish release version: ``[v]MAJOR[.MINOR[.PATCH[.N]]][-PRE][+BUILD]``.

    Missing numeric parts are 0 (``v1.2`` = ``1.2.0``); a pre-release is lower than its
    release and pre-release identifiers compare as semver 2.0.0 says (numeric ones as
    numbers, below alphanumeric ones); build metadata does not order versions.
    """

    numbers: tuple[int, ...]
    pre: tuple[int | str, ...]
    text: str  # as written, without a leading "v"

    @classmethod
    def parse(cls, name: str) -> ReleaseVersion | None:
        """The version of a tag name such as ``v1.2.3``, or None when it is not one."""
        text = name[1:] if name[:1] in ("v", "V") else name
        m = _VERSION.fullmatch(text)
        if m is None:
            return None
        nums = tuple(int(x) for x in m["nums"].split("."))
        numbers = nums + (0,) * (4 - len(nums))
        pre = tuple(int(p) if p.isdigit() else p for p in (m["pre"] or "").split(".") if p)
        return cls(numbers, pre, text)

    def _key(self) -> tuple[tuple[int, ...], int, tuple[tuple[int, int | str], ...]]:
        # A release (no pre-release) sorts after every pre-release of the same numbers;
        # numeric identifiers sort before alphanumeric ones.
        return (
            self.numbers,
            0 if self.pre else 1,
            tuple((0, p) if isinstance(p, int) else (1, p) for p in self.pre),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReleaseVersion) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: ReleaseVersion) -> bool:
        # The kind tag (0 numeric, 1 alphanumeric) keeps ints and strs from ever being
        # compared with each other; a shorter pre-release that is a prefix sorts first.
        return self._key() < other._key()

    def __str__(self) -> str:
        return self.text


# -- the store ---------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedRevision:
    """What one application was last allowed to deploy."""

    commit: str
    tag: str | None
    version: str | None  # the tag's version as written (without "v"), when it parses
    policy_digest: str
    recorded_at: str  # ISO 8601, the engine's clock reading of the run that allowed it

    def describe(self, *, when: bool = True) -> str:
        parts = [f"commit {self.commit}"]
        if self.tag is not None:
            parts.append(f"tag {self.tag}")
        if self.version is not None:
            parts.append(f"version {self.version}")
        return ", ".join(parts) + (f" (allowed {self.recorded_at})" if when else "")

    def same_revision(self, other: AllowedRevision) -> bool:
        return (self.commit, self.tag, self.version) == (other.commit, other.tag, other.version)


@dataclass(frozen=True)
class RollbackState:
    """The SQLite state file at ``path``."""

    path: Path

    def _unavailable(self, what: str, exc: BaseException | None = None) -> StateError:
        found = f"{type(exc).__name__}: {exc}" if exc is not None else None
        return StateError(
            f"the rollback state {self.path} {what}",
            found=found,
            expected="a gitops-gate rollback state (SQLite) the gate can read and write",
            hint="fix the file or its volume (permissions, disk); do NOT delete it to get past "
            "this: that resets every application's rollback protection (ADR 12)",
        )

    @contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        mode = "rwc" if create else "rw"
        uri = f"file:{quote(str(self.path.absolute()))}?mode={mode}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise self._unavailable("cannot be opened", e) from e
        with closing(conn):
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                if create:
                    conn.execute("PRAGMA journal_mode = WAL")
                yield conn
            except sqlite3.Error as e:
                raise self._unavailable("cannot be used", e) from e

    def _schema(self, conn: sqlite3.Connection) -> bool:
        """True when the table exists; False for an empty database; else StateError."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if version == SCHEMA_VERSION and _TABLE in names:
            return True
        if version == 0 and not names:
            return False
        raise self._unavailable(
            f"is not a rollback state this gate knows (schema version {version}, "
            f"tables {sorted(names)})"
        )

    def read(self, key: str) -> AllowedRevision | None:
        """The revision last allowed for ``key``; None when none was allowed yet."""
        if not self.path.exists():
            if not self.path.parent.is_dir():
                raise self._unavailable(
                    f"cannot be created: its directory {self.path.parent} does not exist"
                )
            return None
        with self._connect(create=False) as conn:
            if not self._schema(conn):
                return None
            row = conn.execute(_SELECT, (key,)).fetchone()
        return None if row is None else self._validate(key, row)

    def _validate(self, key: str, row: tuple[object, ...]) -> AllowedRevision:
        commit, tag, version, digest, at = row
        ok = (
            isinstance(commit, str)
            and _COMMIT.fullmatch(commit) is not None
            and (tag is None or (isinstance(tag, str) and tag != ""))
            and (
                version is None
                or (isinstance(version, str) and ReleaseVersion.parse(version) is not None)
            )
            and isinstance(digest, str)
            and isinstance(at, str)
        )
        if not ok:
            raise self._unavailable(f"holds an invalid row for {key!r}", None)
        return AllowedRevision(commit, tag, version, digest, at)  # type: ignore[arg-type]

    def advance(self, key: str, expected: AllowedRevision | None, new: AllowedRevision) -> None:
        """Record ``new`` for ``key`` if the row is still ``expected`` (compare-and-set).

        A row that already holds the same revision is left alone (a concurrent run of the
        same revision). Any other change since the run read the state raises
        :class:`StateError`: the run compared against a stale revision and must be retried.
        """
        if not self.path.parent.is_dir():
            raise self._unavailable(
                f"cannot be created: its directory {self.path.parent} does not exist"
            )
        with self._connect(create=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not self._schema(conn):
                    conn.execute(_SCHEMA)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                row = conn.execute(_SELECT, (key,)).fetchone()
                current = None if row is None else self._validate(key, row)
                if current is not None and current.same_revision(new):
                    conn.execute("ROLLBACK")
                    return
                unchanged = (current is None and expected is None) or (
                    current is not None and expected is not None and current.same_revision(expected)
                )
                if not unchanged:
                    raise self._unavailable(
                        "changed while this run was verifying (another run of the same "
                        f"application recorded {current.describe() if current else 'nothing'}); "
                        "run the gate again to compare against it"
                    )
                conn.execute(
                    _UPSERT,
                    (key, new.commit, new.tag, new.version, new.policy_digest, new.recorded_at),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
