"""Where offsets are saved: one SQLite database (WAL mode) in the state directory.

Each followed file has a :class:`FileRecord`, keyed by a random ``file_id``. The base of its line
ids (``id_base``, see ``identity.line_id_base``) is written before any of its lines is shipped, so
line ids stay the same on every re-delivery. A record's offset only moves when every sink has
acknowledged the batch ending there (see ``pipeline``).
Commits are SQLite transactions with ``synchronous=FULL``: atomic and durable. All database work
runs on one dedicated thread, never on the event loop.

The database is created whole (under a temporary name, then renamed into place), so a
``checkpoints.db`` without logferry's schema is a damaged one: the store refuses to start on it
(:class:`DamagedDatabase`) unless told to set it aside (``reset_unreadable``). The state directory
is created 0700 and its files 0600: the database names every log followed. A state directory
deleted while running is noticed at the next commit and recreated with every record.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import sqlite3
import stat
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, LogferryError
from ..files.identity import Fingerprint
from ..files.record import FileRecord

log = logging.getLogger("logferry.checkpoints")
T = TypeVar("T")

SCHEMA_VERSION = 2
DB_NAME = "checkpoints.db"
LOCK_NAME = "lock"
NEW_SUFFIX = ".new"  # the database being created, before it is renamed into place
RESET_FLAG = "--reset-unreadable-checkpoints"
DIR_MODE, FILE_MODE = 0o700, 0o600
_SIDE_FILES = ("", "-wal", "-shm", "-journal")  # the database and what SQLite keeps beside it

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

def _row(record: FileRecord) -> tuple[Any, ...]:
    return (record.file_id, record.key[0], record.key[1], record.fp.length, record.fp.value, record.offset,
            record.guard, record.size, record.path, record.lineage, record.state, record.seen or time.time(),
            record.root, record.origin, record.id_base)


def _record(row: tuple[Any, ...]) -> FileRecord:
    fid, dev, ino, fp_len, fp, offset, guard, size, path, lineage, state, seen, root, origin, id_base = row
    return FileRecord(fid, (dev, ino), Fingerprint(fp_len, bytes(fp)), offset, bytes(guard), size, path, lineage,
                      state, seen, root, origin, id_base)


class DamagedDatabase(ConfigError):
    """The checkpoint database exists but cannot be used (exit code 2); nothing was changed.

    Raised at start unless the store was told to set such a database aside (``reset_unreadable``,
    the ``--reset-unreadable-checkpoints`` flag): starting without checkpoints is a choice the user
    makes, since every file then starts by the start policy (read again, or from its end).
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"checkpoint database {path} is unreadable ({reason}); to set it aside as "
            f"{DB_NAME}.corrupt-<time> and start without checkpoints, run once with {RESET_FLAG}"
        )
        self.path = path
        self.reason = reason


def database_problem(path: Path) -> str | None:
    """Why the checkpoint database at ``path`` would stop a run (see :class:`DamagedDatabase`), or
    None when it can be used or there is none yet (a first start). Changes nothing (see
    :func:`read_records`)."""
    try:
        read_records(Path(path).parent)
    except DamagedDatabase as exc:
        return exc.reason
    except ConfigError as exc:
        return str(exc)
    return None


def _schema_problem(db: sqlite3.Connection, path: Path) -> str | None:
    """What is wrong with an open checkpoint database, or None. Raises the SQLite errors that are
    not damage (locked, disk full, I/O): those are no reason to set a database aside."""
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return "it holds no tables"
        if "meta" in tables and _newer(db):
            return None  # not damage: a newer logferry's, refused as such (and never set aside)
        if not {"meta", "files"} <= tables:
            return "it is not a logferry checkpoint database"
        check = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        return None if check == "ok" else f"damaged: {check}"
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc):
            return str(exc)
        raise


def _newer(db: sqlite3.Connection) -> bool:
    version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return version is not None and str(version[0]).isdigit() and int(version[0]) > SCHEMA_VERSION


def _is_damage(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _empty(path: Path) -> str:
    """An empty database file is never opened: SQLite would delete a write-ahead log beside it,
    the only copy of what it may hold."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return f"it is empty; its write-ahead log {wal.name} ({wal.stat().st_size:,} bytes) is kept"
    return "it is empty"


def _orphan_wal(path: Path) -> str | None:
    """A write-ahead log without its database: its checkpoints are there, but a new database
    created beside it would take its pages (SQLite replays a WAL it finds)."""
    wal = Path(f"{path}-wal")
    if wal.exists() and wal.stat().st_size > 0:
        return f"it is missing but its write-ahead log {wal.name} is there"
    return None


def _full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


def _no_space_left(path: Path) -> bool:
    try:
        return os.statvfs(path).f_bavail == 0
    except OSError:
        return False


def _state_error(state_dir: Path, exc: OSError | sqlite3.Error) -> LogferryError:
    """One line for a state directory that cannot be used. A full file system is a runtime failure
    (exit 1: a service manager may retry once space is freed); anything else is the setup (exit 2)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if _full(exc) or _no_space_left(state_dir):  # SQLite says "disk I/O error" when it cannot map its -shm
        return LogferryError(f"no space left for the checkpoints in state directory {state_dir} ({reason}): "
                             "free some space there or give another --state-dir")
    return ConfigError(f"cannot use state directory {state_dir}: {reason}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """The database and its thread. Open with :meth:`open`; every method is a coroutine.

    ``reset_unreadable``: set an unreadable or empty database aside (``checkpoints.db.corrupt-<time>``)
    and start without checkpoints, instead of refusing to start (:class:`DamagedDatabase`).
    """

    def __init__(self, state_dir: Path, reset_unreadable: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        self.reset_unreadable = reset_unreadable
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="logferry-state")
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the database opened
        self._rows: dict[str, tuple[Any, ...]] = {}  # every saved row: rewritten if the database vanishes

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> list[FileRecord]:
        """Lock the state directory, open (or create) the database and return every record."""
        return await self._call(self._open)

    async def save(self, records: list[FileRecord]) -> None:
        """Write these records in one durable transaction."""
        rows = [_row(r) for r in records]
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
        created = self._lock_state_dir()
        if not created:
            self._warn_if_open_to_others()
        try:
            return self._load()
        except DamagedDatabase as exc:
            if not self.reset_unreadable:
                raise
            aside = self._set_aside()
            log.warning("checkpoint database %s was unreadable (%s); set aside as %s, starting without "
                        "checkpoints (files start by the start policy)", self.path, exc.reason, aside)
            return self._load()

    def _lock_state_dir(self) -> bool:
        """Create the state directory if needed (0700; True if it was created) and lock it."""
        try:
            created = self._make_state_dir()
            self._lock_fd = os.open(self.state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise _state_error(self.state_dir, exc) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._lock_fd, 32, 0).decode(errors="replace").strip() or "?"
            self._close()
            raise ConfigError(
                f"state directory {self.state_dir} is in use by another logferry (pid {holder}); "
                "give each run its own --state-dir"
            ) from None
        try:
            os.ftruncate(self._lock_fd, 0)
            os.pwrite(self._lock_fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            self._close()
            raise _state_error(self.state_dir, exc) from None
        return created

    def _make_state_dir(self) -> bool:
        """The directory itself 0700 (it lists every log followed); parents by the umask, as mkdir -p."""
        if self.state_dir.is_dir():
            return False
        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.state_dir, DIR_MODE)
        except FileExistsError:
            return False
        return True

    def _warn_if_open_to_others(self) -> None:
        """A directory logferry did not create keeps its mode: say so if others may look in."""
        mode = stat.S_IMODE(os.stat(self.state_dir).st_mode)
        if mode & 0o077:
            log.warning("state directory %s is open to other users (mode %04o) and its checkpoint database "
                        "names every log followed: chmod 700 it", self.state_dir, mode)

    def _load(self) -> list[FileRecord]:
        try:
            if not self.path.exists():
                orphan = _orphan_wal(self.path)
                if orphan is not None:
                    raise DamagedDatabase(self.path, orphan)
                self._create()
            elif self.path.stat().st_size == 0:
                raise DamagedDatabase(self.path, _empty(self.path))
            db = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise _state_error(self.state_dir, exc) from None
        try:
            problem = _schema_problem(db, self.path)
            if problem is not None:
                raise DamagedDatabase(self.path, problem)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
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
            rows = db.execute(f"SELECT {_COLUMNS} FROM files").fetchall()
            records = [_record(row) for row in rows]
            st = os.stat(self.path)
        except sqlite3.DatabaseError as exc:
            db.close()
            if _is_damage(exc):
                raise DamagedDatabase(self.path, str(exc)) from None
            raise _state_error(self.state_dir, exc) from None
        except BaseException:
            db.close()
            raise
        self._db = db
        self._identity = (st.st_dev, st.st_ino)
        self._rows = {row[0]: row for row in rows}
        return records

    def _create(self) -> None:
        """A new database, whole or not at all: written under a temporary name (0600, so SQLite
        gives its -wal and -shm the same mode), synced, then renamed into place."""
        new = Path(f"{self.path}{NEW_SUFFIX}")
        for suffix in _SIDE_FILES:  # left by a crash during an earlier creation
            Path(f"{new}{suffix}").unlink(missing_ok=True)
        os.close(os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
        db = sqlite3.connect(new, isolation_level=None)
        try:
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(f"BEGIN; {_SCHEMA} INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}'); "
                             "COMMIT;")
            db.execute("PRAGMA journal_mode=WAL")  # recorded in the file's header
        finally:
            db.close()
        fd = os.open(new, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(new, self.path)
        _fsync_dir(self.state_dir)

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{DB_NAME}.corrupt-{stamp}")
        for suffix in _SIDE_FILES:
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
                os.chmod(f"{aside}{suffix}", FILE_MODE)  # it names the logs as the database did
        _fsync_dir(self.state_dir)
        return aside

    def _save(self, rows: list[tuple[Any, ...]]) -> None:
        self._reopen_if_gone()
        assert self._db is not None
        with self._db:  # BEGIN ... COMMIT; rolled back on error
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_UPSERT, rows)
        self._rows.update((row[0], row) for row in rows)

    def _reopen_if_gone(self) -> None:
        """SQLite would go on writing into a deleted database (its checkpoints lost at the next start):
        when the file at the path is not the one opened, make the directory and the database again,
        lock it again and write back every record."""
        try:
            st = os.stat(self.path)
            if self._db is not None and (st.st_dev, st.st_ino) == self._identity:
                return
            what = "replaced"
        except FileNotFoundError:
            what = "deleted"
        if self._db is not None:  # not again while making the new one fails (the engine says that once)
            log.error("checkpoint database %s was %s while logferry ran; writing every checkpoint (%d files) "
                      "to a new one", self.path, what, len(self._rows))
        rows = list(self._rows.values())
        self._close()
        self._lock_state_dir()
        self._load()
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_UPSERT, rows)
        self._rows.update((row[0], row) for row in rows)

    def _forget(self, older_than: float, keep: set[str]) -> int:
        self._reopen_if_gone()
        assert self._db is not None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            stale = [fid for (fid,) in self._db.execute("SELECT file_id FROM files WHERE seen < ?", (older_than,))
                     if fid not in keep]
            self._db.executemany("DELETE FROM files WHERE file_id = ?", [(fid,) for fid in stale])
        for fid in stale:
            self._rows.pop(fid, None)
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
    if not path.exists():
        orphan = _orphan_wal(path)
        if orphan is not None:
            raise DamagedDatabase(path, orphan)
        return None
    if path.stat().st_size == 0:  # what a run refuses, without opening it (see _empty)
        raise DamagedDatabase(path, _empty(path))
    uri = f"file:{urllib.parse.quote(str(path.absolute()))}?mode=ro"
    if not Path(f"{path}-wal").exists():  # a run that opens it now writes to its new -wal for a long while first
        uri += "&immutable=1"
    try:
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            problem = _schema_problem(db, path)
            if problem is not None:
                raise DamagedDatabase(path, problem)
            version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is not None and int(version[0]) > SCHEMA_VERSION:
                raise ConfigError(f"checkpoint database {path} was written by a newer logferry "
                                  f"(schema {version[0]}, this one reads {SCHEMA_VERSION})")
            if version is not None and int(version[0]) < SCHEMA_VERSION:  # not migrated yet: as the migration would
                v1 = "file_id, dev, ino, fp_len, fp, offset, guard, size, path, lineage, state, seen"
                return [_record(row) for row in db.execute(f"SELECT {v1}, '', file_id, file_id FROM files")]
            return [_record(row) for row in db.execute(f"SELECT {_COLUMNS} FROM files")]
        finally:
            db.close()
    except sqlite3.Error as exc:
        if _is_damage(exc):
            raise DamagedDatabase(path, str(exc)) from None
        raise ConfigError(f"cannot read checkpoint database {path}: {exc}") from None
