"""The SQLite store's schema, kept apart from the store so migrations read as one list of statements.

Every table keeps the exact `to_doc()` JSON in `doc` (so SQLite holds the same fields as the cluster stores)
plus the few columns queries filter and sort on. `logs` has an explicit INTEGER PRIMARY KEY (`rid`) because
the external-content FTS5 index is keyed by rowid, and VACUUM may renumber implicit rowids.
"""

from __future__ import annotations

SCHEMA_VERSION = 2
"""Bump when a statement below changes; `MIGRATIONS[n]` upgrades a store from version n to n + 1."""

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS logs (
        rid INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts REAL,
        level TEXT,
        service TEXT,
        host TEXT,
        template_id TEXT,
        incident_id TEXT,
        anomaly_score REAL NOT NULL DEFAULT 0,
        root_cause_score REAL NOT NULL DEFAULT 0,
        source TEXT NOT NULL,
        line_id INTEGER NOT NULL,
        "offset" INTEGER NOT NULL,
        message TEXT NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS logs_template_id ON logs(template_id)",
    "CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts, line_id)",
    # Partial: most records belong to no incident, so the index stays small and inserts skip it.
    "CREATE INDEX IF NOT EXISTS logs_incident_id ON logs(incident_id) WHERE incident_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS logs_level ON logs(level COLLATE NOCASE)",
    "CREATE INDEX IF NOT EXISTS logs_service ON logs(service)",
    # External-content FTS5 over logs.message. New rows are indexed in bulk by SQLiteStore.write (one
    # INSERT ... SELECT of the rids it added: a per-row AFTER INSERT trigger makes writes 2x slower), so every
    # insert into logs must go through it. Deletes and message changes are kept in sync by the triggers; the
    # update trigger fires only when the message really changes, so upserts never duplicate FTS rows.
    """CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
        message, content='logs', content_rowid='rid'
    )""",
    """CREATE TRIGGER IF NOT EXISTS logs_fts_delete AFTER DELETE ON logs BEGIN
        INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.rid, old.message);
    END""",
    """CREATE TRIGGER IF NOT EXISTS logs_fts_update AFTER UPDATE OF message ON logs
    WHEN old.message IS NOT new.message BEGIN
        INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.rid, old.message);
        INSERT INTO logs_fts(rowid, message) VALUES (new.rid, new.message);
    END""",
    """CREATE TABLE IF NOT EXISTS templates (
        template_id TEXT PRIMARY KEY,
        template TEXT NOT NULL,
        service TEXT,
        count INTEGER NOT NULL DEFAULT 0,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS templates_count ON templates(count)",
    """CREATE TABLE IF NOT EXISTS incidents (
        incident_id TEXT PRIMARY KEY,
        anomaly_score REAL NOT NULL,
        ts REAL,
        source TEXT,
        status TEXT,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS incidents_anomaly_score ON incidents(anomaly_score)",
    # rid keeps the engine's order (best first) across upserts; recommendation_id is the document id.
    """CREATE TABLE IF NOT EXISTS recommendations (
        rid INTEGER PRIMARY KEY,
        recommendation_id TEXT NOT NULL UNIQUE,
        incident_id TEXT NOT NULL,
        status TEXT NOT NULL,
        doc TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS recommendations_incident_id ON recommendations(incident_id)",
    """CREATE TABLE IF NOT EXISTS state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        object_id TEXT,
        details TEXT NOT NULL
    )""",
    # Small documents kept beside the results: alert rules, API token hashes, alert firings (version 2).
    """CREATE TABLE IF NOT EXISTS objects (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        ts REAL NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, id)
    )""",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {1: ()}
"""Statements upgrading a store of version n to n + 1 (1 -> 2 only adds `objects`, which SCHEMA creates)."""

TABLES = ("meta", "logs", "logs_fts", "templates", "incidents", "recommendations", "state", "audit", "objects")
