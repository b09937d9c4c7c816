"""Where offsets are saved: one SQLite database (WAL mode) in the state directory.

Each followed file has a :class:`FileRecord`, keyed by a random ``file_id``. The base of its line
ids (``id_base``, see ``identity.line_id_base``) is written before any of its lines is shipped, so
line ids stay the same on every re-delivery. A record's offset only moves when every sink has
acknowledged the batch ending there (see ``pipeline``).
Commits are SQLite transactions with ``synchronous=FULL``: atomic and durable. All database work
runs on one dedicated thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError
from .identity import Fingerprint, Key

log = logging.getLogger("logferry.checkpoints")
T = TypeVar("T")

SCHEMA_VERSION = 2
DB_NAME = "checkpoints.db"
LOCK_NAME = "lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    file_id TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    fp_len INTEGER NOT NULL,
    fp BLOB NOT NULL,
    offset INTEGER NOT NULL,
    guard BLOB NOT NULL,
    size INTEGER NOT NULL,
    path TEXT NOT NULL,
    lineage TEXT NOT NULL,
    state TEXT NOT NULL,
    seen REAL NOT NULL,
    root TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL DEFAULT '',
    id_base TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS files_by_inode ON files (dev, ino);
"""
_COLUMNS = "file_id, dev, ino, fp_len, fp, offset, guard, size, path, lineage, state, seen, root, origin, id_base"
_UPSERT = (
    f"INSERT INTO files ({_COLUMNS}) VALUES ({','.join('?' * len(_COLUMNS.split(', ')))}) "
    "ON CONFLICT(file_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS.split(", ")[1:])
)

_MIGRATIONS = {
    # 1 → 2: line ids derived from the file, not random. Records written before keep their random
    # file_id as the base of their ids, so the ids of files being shipped do not change on upgrade.
    1: """
    ALTER TABLE files ADD COLUMN root TEXT NOT NULL DEFAULT '';
    ALTER TABLE files ADD COLUMN origin TEXT NOT NULL DEFAULT '';
    ALTER TABLE files ADD COLUMN id_base TEXT NOT NULL DEFAULT '';
    UPDATE files SET origin = file_id, id_base = file_id;
    """,
}

LIVE, DONE, GONE = "live", "done", "gone"
"""Record states: being followed; drained and closed (rotated away or deleted); vanished unread."""


def new_file_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass(eq=False, slots=True)
class FileRecord:
    """The saved state of one file (one generation of it: a truncation starts a new record)."""

    file_id: str
    key: Key
    fp: Fingerprint
    offset: int  # acknowledged by every sink
    guard: bytes  # hash of the bytes just before ``offset``
    size: int  # size last seen, to estimate what a truncation while stopped lost
    path: str
    lineage: str  # the path it was first followed at: rotations of one log share it
    state: str = LIVE
    seen: float = 0.0
    root: str = ""  # identity.file_root of the file it was created for ("" if saved by schema 1)
    origin: str = ""  # what this generation's line ids derive from (see identity.next_origin)
    id_base: str = ""  # its lines' ids are ID_BASE:OFFSET; "" until its first line is known

    def row(self) -> tuple[Any, ...]:
        return (self.file_id, self.key[0], self.key[1], self.fp.length, self.fp.value, self.offset, self.guard,
                self.size, self.path, self.lineage, self.state, self.seen or time.time(), self.root, self.origin,
                self.id_base)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> FileRecord:
        fid, dev, ino, fp_len, fp, offset, guard, size, path, lineage, state, seen, root, origin, id_base = row
        return cls(fid, (dev, ino), Fingerprint(fp_len, bytes(fp)), offset, bytes(guard), size, path, lineage,
                   state, seen, root, origin, id_base)


class CheckpointStore:
    """The database and its thread. Open with :meth:`open`; every method is a coroutine."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="logferry-state")
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> list[FileRecord]:
        """Lock the state directory, open (or create) the database and return every record."""
        return await self._call(self._open)

    async def save(self, records: list[FileRecord]) -> None:
        """Write these records in one durable transaction."""
        rows = [r.row() for r in records]
        if rows:
            await self._call(self._save, rows)

    async def forget(self, older_than: float, keep: set[str]) -> int:
        """Delete records not seen since ``older_than`` (unix time) except ``keep``; return how many."""
        return await self._call(self._forget, older_than, keep)

    async def close(self) -> None:
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    # -- on the store's thread -----------------------------------------------

    def _open(self) -> list[FileRecord]:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot use state directory {self.state_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock_fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self._lock_fd)
            self._lock_fd = None
            raise ConfigError(
                f"state directory {self.state_dir} is in use by another logferry (pid {holder}); "
                "give each run its own --state-dir"
            ) from None
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)
        try:
            return self._load()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not self.path.exists():
                raise ConfigError(f"cannot open checkpoint database {self.path}: {exc}") from None
            aside = self._set_aside()
            log.warning(
                "checkpoint database %s is unreadable (%s); kept it as %s and starting without checkpoints "
                "(files start by the start policy)", self.path, exc, aside,
            )
            return self._load()

    def _load(self) -> list[FileRecord]:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(version[0]) > SCHEMA_VERSION:
                raise ConfigError(
                    f"checkpoint database {self.path} was written by a newer logferry "
                    f"(schema {version[0]}, this one reads {SCHEMA_VERSION})"
                )
            else:
                _migrate(db, int(version[0]))
            records = [FileRecord.from_row(row) for row in db.execute(f"SELECT {_COLUMNS} FROM files")]
        except BaseException:
            db.close()
            raise
        self._db = db
        return records

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        return aside

    def _save(self, rows: list[tuple[Any, ...]]) -> None:
        assert self._db is not None
        with self._db:  # BEGIN ... COMMIT; rolled back on error
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_UPSERT, rows)

    def _forget(self, older_than: float, keep: set[str]) -> int:
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            stale = [fid for (fid,) in self._db.execute("SELECT file_id FROM files WHERE seen < ?", (older_than,))
                     if fid not in keep]
            self._db.executemany("DELETE FROM files WHERE file_id = ?", [(fid,) for fid in stale])
        return len(stale)

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a database of schema ``version`` up to SCHEMA_VERSION, one atomic step a version."""
    for step in range(version, SCHEMA_VERSION):
        db.executescript(f"BEGIN IMMEDIATE; {_MIGRATIONS[step]} "
                         f"UPDATE meta SET value = '{step + 1}' WHERE key = 'schema_version'; COMMIT;")


def read_records(state_dir: Path) -> list[FileRecord] | None:
    """Every saved record, read without disturbing a run that uses ``state_dir`` (``logferry sources``).

    Nothing is locked, written or created: no state directory, no database, no ``-wal`` or ``-shm``
    file. None when there is no database (no checkpoints yet). A database a run has open (its
    ``-wal`` file exists) is read through SQLite's read-only mode, which sees what the run
    committed; one no run has open is read as immutable, since read-only mode would create the
    ``-wal`` and ``-shm`` files of a WAL database. Raises ConfigError when it cannot be read.
    """
    path = Path(state_dir) / DB_NAME
    if not path.is_file():
        return None
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    if not Path(f"{path}-wal").exists():  # a run that opens it now writes to its new -wal for a long while first
        uri += "&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "files" not in tables:
                return []
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is not None and int(version[0]) > SCHEMA_VERSION:
                raise ConfigError(f"checkpoint database {path} was written by a newer logferry "
                                  f"(schema {version[0]}, this one reads {SCHEMA_VERSION})")
            if version is not None and int(version[0]) < SCHEMA_VERSION:  # not migrated yet: as the migration would
                v1 = "file_id, dev, ino, fp_len, fp, offset, guard, size, path, lineage, state, seen"
                return [FileRecord.from_row(row) for row in db.execute(f"SELECT {v1}, '', file_id, file_id FROM files")]
            return [FileRecord.from_row(row) for row in db.execute(f"SELECT {_COLUMNS} FROM files")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot read checkpoint database {path}: {exc}") from None
