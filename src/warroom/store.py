"""The report store: one SQLite file in WAL mode.

Reports are append-only and bitemporal: ``observed_at`` (when it happened) and ``received_at``
(when we learned it), both UTC epoch seconds. The situation "as of T" reads only reports with
``received_at <= T``.

Ingest is idempotent. A report's identity is ``(source, report_id)``; its content is every
field except ``received_at`` (hearing the same report again later is not new content). The same
key with the same content is a duplicate (no-op); the same key with other content is a
conflict: the newcomer goes to quarantine beside the stored original, which is never
overwritten. Stored content is compared field by field (no digest is kept). Inside one batch,
rows of the same key are settled by earliest ``received_at`` then smallest content digest
(:func:`warroom.digest.content_digest`), so the order of rows in a file does not change what
is stored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warroom.digest import content_digest
from warroom.domain import Report

SCHEMA_VERSION = 3

# The columns migration 3 copies, spelled out: a migration must not change when ROW_FIELDS does.
_V3_COLS = ("source, report_id, force, observed_at, received_at, lat, lon, place, uncertainty_km, "
            "grade, event, target, text, sources, extra, ingested_at, origin")

# Forward migrations: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE reports (
            seq INTEGER PRIMARY KEY,
            source TEXT NOT NULL, report_id TEXT NOT NULL, force TEXT NOT NULL,
            observed_at INTEGER NOT NULL, received_at INTEGER NOT NULL,
            lat REAL, lon REAL, place TEXT, uncertainty_km REAL,
            grade TEXT NOT NULL, event TEXT NOT NULL, target TEXT, text TEXT, sources TEXT,
            extra TEXT, digest TEXT NOT NULL, ingested_at INTEGER NOT NULL, origin TEXT,
            UNIQUE (source, report_id))""",
        """CREATE INDEX reports_force_observed ON reports (force, observed_at)""",
        """CREATE TABLE quarantine (
            id INTEGER PRIMARY KEY, at INTEGER NOT NULL, origin TEXT, line INTEGER,
            kind TEXT NOT NULL, error TEXT NOT NULL, raw BLOB,
            source TEXT, report_id TEXT, fingerprint BLOB NOT NULL UNIQUE)""",
    ],
    [  # 1 -> 2: alerts with their history, and briefings
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY, state TEXT NOT NULL, json TEXT NOT NULL,
            updated_at INTEGER NOT NULL)""",
        """CREATE TABLE alert_events (
            seq INTEGER PRIMARY KEY, alert_id TEXT NOT NULL, event TEXT NOT NULL,
            at INTEGER NOT NULL, json TEXT NOT NULL)""",
        """CREATE INDEX alert_events_alert ON alert_events (alert_id, at)""",
        """CREATE TABLE briefings (
            slot INTEGER PRIMARY KEY, as_of INTEGER NOT NULL, late INTEGER NOT NULL,
            written_at INTEGER NOT NULL, json TEXT NOT NULL)""",
    ],
    [  # 2 -> 3: no stored digest (content is compared field by field; a digest per report
        # cost a third of the ingest's time), and the key indexed report_id first (its first
        # column then tells most keys apart: a source is shared by many reports)
        """CREATE TABLE reports_v3 (
            seq INTEGER PRIMARY KEY,
            source TEXT NOT NULL, report_id TEXT NOT NULL, force TEXT NOT NULL,
            observed_at INTEGER NOT NULL, received_at INTEGER NOT NULL,
            lat REAL, lon REAL, place TEXT, uncertainty_km REAL,
            grade TEXT NOT NULL, event TEXT NOT NULL, target TEXT, text TEXT, sources TEXT,
            extra TEXT, ingested_at INTEGER NOT NULL, origin TEXT)""",
        f"""INSERT INTO reports_v3 (seq, {_V3_COLS}) SELECT seq, {_V3_COLS} FROM reports""",
        """DROP TABLE reports""",
        """ALTER TABLE reports_v3 RENAME TO reports""",
        """CREATE UNIQUE INDEX reports_key ON reports (report_id, source)""",
        """CREATE INDEX reports_force_observed ON reports (force, observed_at)""",
    ],
]

# Column order of a report row tuple, as built by the ingest validators.
ROW_FIELDS = ("source", "report_id", "force", "observed_at", "received_at", "lat", "lon", "place",
              "uncertainty_km", "grade", "event", "target", "text", "sources", "extra")
_REPORT_COLS = ", ".join(ROW_FIELDS)
# Positions in ROW_FIELDS of a report's content: every field but received_at.
CONTENT = tuple(j for j, f in enumerate(ROW_FIELDS) if f != "received_at")
_CONTENT_COLS = ", ".join(f"r.{ROW_FIELDS[j]}" for j in CONTENT)
# Report fields that may be NULL (the others are NOT NULL in the schema).
_NULLABLE = frozenset(j for j, f in enumerate(ROW_FIELDS)
                      if f in ("lat", "lon", "place", "uncertainty_km", "target", "text",
                               "sources", "extra"))
# Text fields often the same for a whole batch (written as literals then).
_CONSTANT_PRONE = frozenset(j for j, f in enumerate(ROW_FIELDS)
                            if f in ("source", "force", "grade", "event", "target", "sources"))


@dataclass
class BatchResult:
    accepted: int = 0
    duplicate: int = 0
    conflict: int = 0

    def __iadd__(self, other: BatchResult) -> BatchResult:
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.conflict += other.conflict
        return self


@dataclass(frozen=True)
class QuarantineRow:
    origin: str | None
    line: int | None
    kind: str  # "invalid" | "conflict"
    error: str
    raw: bytes | None
    source: str | None = None
    report_id: str | None = None


class StoreError(Exception):
    """The store cannot be opened or is of a newer schema."""


class Store:
    """A report store on a SQLite file (``":memory:"`` for a throw-away store)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if self.path != ":memory:":
                mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: could not switch to WAL mode (got {mode})")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA temp_store=MEMORY")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: index inserts stay in memory
            # Checkpoint the WAL into the database every 64 MiB rather than every 4 MiB: a bulk
            # ingest then writes each hot index page back once per checkpoint, not once per
            # batch, and syncs a tenth as often; the WAL file is cut back to 64 MiB after.
            self.conn.execute("PRAGMA wal_autocheckpoint=16384")
            self.conn.execute("PRAGMA journal_size_limit=67108864")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: not a warroom store ({e})") from None

    # -- schema --------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        v = self.schema_version
        if v > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {v} is newer than this warroom "
                             f"understands ({SCHEMA_VERSION}); upgrade warroom")
        for n in range(v, SCHEMA_VERSION):
            with self.transaction():
                for stmt in MIGRATIONS[n]:
                    self.conn.execute(stmt)
                self.conn.execute(f"PRAGMA user_version = {n + 1}")

    def transaction(self) -> _Tx:
        return _Tx(self.conn)

    def close(self) -> None:
        self.conn.close()

    # -- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                          "DO UPDATE SET value = excluded.value", (key, value))

    # -- writing -------------------------------------------------------------------------------
    def write_batch(
        self, rows: Sequence[tuple[Any, ...]], raws: Sequence[bytes | str | None],
        lines: Sequence[int | None], origin: str | None, bad: Iterable[QuarantineRow] = (),
    ) -> BatchResult:
        """Land one batch in one transaction: good ``rows`` (tuples in ``ROW_FIELDS`` order, with
        their raw input and line numbers) and the batch's ``bad`` rows for quarantine."""
        cols = list(zip(*rows, strict=True)) if rows else [()] * len(ROW_FIELDS)
        return self.write_columns(cols, raws, lines, origin, bad)

    def write_columns(
        self, cols: Sequence[Sequence[Any]], raws: Sequence[bytes | str | None],
        lines: Sequence[int | None], origin: str | None, bad: Iterable[QuarantineRow] = (),
    ) -> BatchResult:
        """As :meth:`write_batch`, with the good rows given by column: ``cols[j]`` holds field
        ``ROW_FIELDS[j]`` of every row. The bulk ingest path builds columns, and the insert
        binds them column-wise (a column that is empty in every row is left to its default
        instead of binding NULL per row, which is slow in the sqlite3 module)."""
        res = BatchResult()
        now = int(time.time())
        n = len(cols[0])
        src, rid = cols[0], cols[1]
        quarantine = list(bad)
        c = self.conn
        with self.transaction():
            before = c.execute("SELECT coalesce(max(seq), 0) FROM reports").fetchone()[0]
            # Optimistic: insert the whole batch. Every row landed unless a key repeats inside
            # the batch or was stored before; only then is the batch settled row by row.
            keep: Sequence[int] = range(n)
            c.execute("SAVEPOINT batch")
            ins = self._insert(cols, origin, now)
            if ins < n:
                keep = self._settle(cols, raws, lines, origin, res, quarantine)
                if len(keep) < n:  # keys repeat inside the batch: only the winners go in
                    c.execute("ROLLBACK TO batch")
                    ins = self._insert([[col[i] for i in keep] for col in cols], origin, now)
            c.execute("RELEASE batch")
            dup = conf = 0
            if ins < len(keep):
                # Some keys were stored already (rows older than this batch): a duplicate when
                # the stored content is the same, else a conflict. Only this rarer path pays
                # for the join.
                c.execute("CREATE TEMP TABLE IF NOT EXISTS stage (source, report_id, i)")
                c.execute("DELETE FROM stage")
                c.executemany("INSERT INTO stage VALUES (?, ?, ?)",
                              ((src[i], rid[i], i) for i in keep))
                for i, *stored in c.execute(
                        f"SELECT s.i, {_CONTENT_COLS} FROM stage s JOIN reports r ON "
                        "r.source = s.source AND r.report_id = s.report_id WHERE r.seq <= ?",
                        (before,)):
                    if tuple(stored) == _content(cols, i):
                        dup += 1
                        continue
                    conf += 1
                    quarantine.append(QuarantineRow(
                        origin, lines[i], "conflict",
                        f"report {rid[i]!r} from {src[i]!r} conflicts with the stored report "
                        "of the same key (same source and report_id, different content); the "
                        "stored one is kept", _as_bytes(raws[i]), src[i], rid[i]))
            self._quarantine(quarantine, now)
        res.duplicate += dup
        res.conflict += conf
        res.accepted += ins
        return res

    def insert_columns(self, cols: Sequence[Sequence[Any]], origins: Sequence[str],
                       now: int) -> int:
        """Insert rows given by column (``cols[j]``: field ``ROW_FIELDS[j]`` of every row), each
        with its own origin, inside the caller's open transaction and without settling: how
        many landed (a row whose key is stored already is skipped). A caller that needs every
        row in rolls back when fewer land, then takes :meth:`write_columns`."""
        return self._insert(cols, origins, now)

    def _insert(self, cols: Sequence[Sequence[Any]], origin: str | Sequence[str] | None,
                now: int) -> int:
        """Insert rows given by column (keys already stored are ignored); how many landed.

        Many rows per statement (``INSERT ... VALUES (...), (...), ...``) from one flat list
        of parameters filled a column at a time: a third of the cost of ``executemany`` with a
        tuple per row. A column that is NULL in every row is left to its default (binding None
        is slow in the sqlite3 module); a text column that is the same in every row (a batch
        from one source, one grade), and the batch's ``ingested_at`` and ``origin``, go into
        the statement as SQL literals (binding text costs a copy and a lock per value).
        ``origin``: one for every row, or a sequence with each row's own."""
        n = len(cols[0])
        if n == 0:
            return 0
        names: list[int] = []
        consts: list[tuple[str, str]] = [("ingested_at", str(int(now)))]
        for j, col in enumerate(cols):
            first = col[0]
            if j in _NULLABLE and first is None and col.count(None) == n:
                continue
            if (j in _CONSTANT_PRONE and _plain(first) and col[-1] == first
                    and col[n // 2] == first and col.count(first) == n):
                consts.append((ROW_FIELDS[j], _literal(first)))
                continue
            names.append(j)
        if isinstance(origin, str) and _plain(origin):
            consts.append(("origin", _literal(origin)))
            origin = None
        k = len(names) + (origin is not None)
        flat: list[Any] = [None] * (n * k)
        for slot, j in enumerate(names):
            flat[slot::k] = cols[j]
        if origin is not None:
            flat[k - 1::k] = [origin] * n if isinstance(origin, str) else origin
        per = max(1, min(256, self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // k))
        execute = self.conn.execute
        bound = tuple(ROW_FIELDS[j] for j in names) + ("origin",) * (origin is not None)
        sql = _insert_sql(bound, tuple(consts), per)
        whole = n // per * per
        landed = 0
        for a in range(0, whole * k, per * k):
            landed += execute(sql, flat[a:a + per * k]).rowcount
        if whole < n:
            landed += execute(_insert_sql(bound, tuple(consts), n - whole),
                              flat[whole * k:]).rowcount
        return landed

    @staticmethod
    def _settle(cols: Sequence[Sequence[Any]], raws: Sequence[bytes | str | None],
                lines: Sequence[int | None], origin: str | None, res: BatchResult,
                quarantine: list[QuarantineRow]) -> list[int]:
        """Settle each key inside the batch whatever the row order: the winner is the earliest
        received (then smallest content digest, taken only of rows whose key repeats); rows
        with its content are duplicates, others conflicts (to quarantine). The winners'
        positions, in batch order."""
        src, rid, rec = cols[0], cols[1], cols[4]
        first: dict[tuple[str, str], int] = {}
        repeats: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(src, rid, strict=True)):
            j = first.setdefault(key, i)
            if j != i:
                repeats.setdefault(key, [j]).append(i)
        losers: list[tuple[int, int]] = []  # (row, its key's winner)
        for key, rows in repeats.items():
            w = min(rows, key=lambda i: (rec[i], content_digest(_content(cols, i))))
            first[key] = w
            losers += [(i, w) for i in rows if i != w]
        for i, w in sorted(losers):
            if _content(cols, i) == _content(cols, w):
                res.duplicate += 1
                continue
            res.conflict += 1
            quarantine.append(QuarantineRow(
                origin, lines[i], "conflict",
                f"report {rid[i]!r} from {src[i]!r} conflicts with another row of the same "
                "batch that has the same key and different content; the other was kept",
                _as_bytes(raws[i]), src[i], rid[i]))
        return sorted(first.values())

    def _quarantine(self, rows: Iterable[QuarantineRow], now: int) -> int:
        """Insert quarantine rows; the same bad input from the same origin, line and reason is
        kept once (re-running a file does not pile up copies)."""
        cur = self.conn.executemany(
            "INSERT OR IGNORE INTO quarantine (at, origin, line, kind, error, raw, source, "
            "report_id, fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((now, q.origin, q.line, q.kind, q.error, q.raw, q.source, q.report_id,
              hashlib.blake2b(repr((q.origin, q.line, q.kind, q.error, q.raw)).encode(),
                              digest_size=16).digest())
             for q in rows))
        return cur.rowcount

    def quarantine(self, rows: Iterable[QuarantineRow]) -> int:
        """Put rows in quarantine (their own transaction)."""
        with self.transaction():
            return self._quarantine(rows, int(time.time()))

    # -- reading -------------------------------------------------------------------------------
    def count_reports(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM reports").fetchone()[0])

    def forces(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT force FROM reports ORDER BY 1")]

    def reports(self, force: str | None = None, as_of: int | None = None) -> list[Report]:
        """Reports (of one force, or all) known as of ``as_of`` (``received_at <= as_of``), in
        ``observed_at`` order (ties: ``received_at``, source, report_id)."""
        sql = f"SELECT {_REPORT_COLS} FROM reports WHERE 1=1"
        args: list[Any] = []
        if force is not None:
            sql += " AND force = ?"
            args.append(force)
        if as_of is not None:
            sql += " AND received_at <= ?"
            args.append(as_of)
        sql += " ORDER BY observed_at, received_at, source, report_id"
        return [_to_report(r) for r in self.conn.execute(sql, args)]

    def reports_by_force(self, as_of: int | None = None) -> dict[str, list[Report]]:
        """:meth:`reports` grouped by force (each list in observed order)."""
        out: dict[str, list[Report]] = {}
        for r in self.reports(as_of=as_of):
            out.setdefault(r.force, []).append(r)
        return out

    def quarantined(self) -> Iterator[dict[str, Any]]:
        """Quarantined rows, oldest first."""
        cur = self.conn.execute("SELECT id, at, origin, line, kind, error, raw, source, "
                                "report_id FROM quarantine ORDER BY id")
        names = [d[0] for d in cur.description]
        for row in cur:
            yield dict(zip(names, row, strict=True))

    def count_quarantined(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    # -- alerts and briefings ------------------------------------------------------------------
    def save_alerts(self, alerts: Iterable[dict[str, Any]],
                    events: Iterable[tuple[str, str, int, dict[str, Any]]]) -> None:
        """Upsert the current alerts (dicts as ``Alert.as_dict``) and append transitions
        ``(alert_id, event, at, payload)``, in one transaction."""
        now = int(time.time())
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO alerts (id, state, json, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET state = excluded.state, json = excluded.json, "
                "updated_at = excluded.updated_at",
                ((a["id"], a["state"], json.dumps(a), now) for a in alerts))
            c.executemany("INSERT INTO alert_events (alert_id, event, at, json) "
                          "VALUES (?, ?, ?, ?)",
                          ((i, e, at, json.dumps(pl)) for i, e, at, pl in events))

    def alerts(self, state: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT json FROM alerts", []
        if state:
            sql += " WHERE state = ?"
            args.append(state)
        return [json.loads(r[0]) for r in self.conn.execute(sql + " ORDER BY id", args)]

    def alert_history(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT json FROM alert_events", []
        if alert_id:
            sql += " WHERE alert_id = ?"
            args.append(alert_id)
        return [json.loads(r[0]) for r in self.conn.execute(sql + " ORDER BY seq", args)]

    def save_briefing(self, slot: int, as_of: int, late: bool, briefing: dict[str, Any]) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO briefings (slot, as_of, late, written_at, json) "
                      "VALUES (?, ?, ?, ?, ?) ON CONFLICT(slot) DO UPDATE SET "
                      "as_of = excluded.as_of, late = excluded.late, "
                      "written_at = excluded.written_at, json = excluded.json",
                      (slot, as_of, int(late), int(time.time()), json.dumps(briefing)))

    def briefing_before(self, t: int) -> dict[str, Any] | None:
        """The latest stored briefing whose slot is before ``t``."""
        row = self.conn.execute("SELECT json FROM briefings WHERE slot < ? ORDER BY slot DESC "
                                "LIMIT 1", (t,)).fetchone()
        return None if row is None else json.loads(row[0])

    def last_briefing_slot(self) -> int | None:
        row = self.conn.execute("SELECT max(slot) FROM briefings").fetchone()
        return None if row is None else row[0]


@functools.lru_cache(maxsize=256)
def _insert_sql(bound: tuple[str, ...], consts: tuple[tuple[str, str], ...], rows: int) -> str:
    """The insert of ``rows`` rows: the columns ``bound`` as parameters, then the columns of
    ``consts`` (name, SQL literal) the same in every row."""
    cols = list(bound) + [name for name, _ in consts]
    one = "(" + ", ".join(["?"] * len(bound) + [lit for _, lit in consts]) + ")"
    return f"INSERT OR IGNORE INTO reports ({', '.join(cols)}) VALUES " + ", ".join([one] * rows)


def _plain(v: Any) -> bool:
    """Text that can be written as an SQL literal as is (no NUL, control or lone surrogate)."""
    return type(v) is str and v.isprintable()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _content(cols: Sequence[Sequence[Any]], i: int) -> tuple[Any, ...]:
    """Row ``i``'s content (every field but ``received_at``) from columns in ROW_FIELDS order."""
    return tuple(cols[j][i] for j in CONTENT)


def _as_bytes(raw: bytes | str | None) -> bytes | None:
    return raw.encode("utf-8", errors="surrogateescape") if isinstance(raw, str) else raw


def _to_report(r: tuple[Any, ...]) -> Report:
    return Report(
        source=r[0], report_id=r[1], force=r[2], observed_at=r[3], received_at=r[4],
        lat=r[5], lon=r[6], place=r[7], uncertainty_km=r[8], grade=r[9], event=r[10],
        target=r[11], text=r[12], sources=r[13], extra=json.loads(r[14]) if r[14] else {},
    )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type:
            self.conn.execute("ROLLBACK")
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            # a failed COMMIT (a deferred constraint, I/O) leaves the transaction open: end it,
            # or its writes would linger in this connection and block the next BEGIN
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
