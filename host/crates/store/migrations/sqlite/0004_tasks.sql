-- Scheduled tasks. Kept in step with ../postgres/0004_tasks.sql.

-- Who runs a task now: one row per task and scope (the IdP instance's id, or '' for a host
-- task), taken in one statement when free or expired, so that of several hosts on one
-- database only one runs it. Deleted when the run ends; a crashed host's row expires.
CREATE TABLE task_leases (
    task        TEXT    NOT NULL,
    scope       TEXT    NOT NULL DEFAULT '',
    holder      TEXT    NOT NULL,
    acquired_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (task, scope)
);

-- Each run of a task: where, when, how long, and what came of it.
CREATE TABLE task_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task        TEXT    NOT NULL,
    idp_id      TEXT    NULL,
    holder      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('ok', 'failed', 'skipped')),
    duration_ms INTEGER NOT NULL,
    summary     TEXT    NOT NULL DEFAULT '',
    error       TEXT    NULL
);
CREATE INDEX task_runs_task_started ON task_runs (task, idp_id, started_at);
CREATE INDEX task_runs_started_at   ON task_runs (started_at);
