-- Gatehouse schema, SQLite dialect. Keep in step with ../postgres/0001_initial.sql:
-- the Rust code runs the same queries on both.
-- Conventions: timestamps are INTEGER Unix seconds; booleans are INTEGER 0/1 (sqlx's Any
-- driver cannot read SQLite BOOLEAN columns); bytes are BLOB.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    email         TEXT    NOT NULL DEFAULT '',
    firstname     TEXT    NOT NULL DEFAULT '',
    lastname      TEXT    NOT NULL DEFAULT '',
    idnumber      TEXT    NOT NULL DEFAULT '',
    branch        TEXT    NOT NULL DEFAULT '',
    auth_source   TEXT    NOT NULL DEFAULT 'local',
    password_hash TEXT    NULL,
    suspended     INTEGER NOT NULL DEFAULT 0 CHECK (suspended IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_email_lower    ON users (lower(email));
CREATE INDEX users_idnumber_lower ON users (lower(idnumber));
CREATE INDEX users_email          ON users (email);
CREATE INDEX users_idnumber       ON users (idnumber);

CREATE TABLE user_fields (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name    TEXT    NOT NULL,
    value   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, name)
);

CREATE TABLE field_provenance (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    field   TEXT    NOT NULL,
    idp_id  TEXT    NOT NULL,
    set_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, field)
);

CREATE TABLE sessions (
    id_hash      TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idp_id       TEXT    NULL,
    logout_state BLOB    NOT NULL,
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user_id    ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE pending_logins (
    token_hash           TEXT    PRIMARY KEY,
    idp_id               TEXT    NOT NULL,
    plugin_state         BLOB    NOT NULL,
    browser_binding_hash TEXT    NOT NULL,
    return_to            TEXT    NOT NULL,
    test_mode            INTEGER NOT NULL DEFAULT 0 CHECK (test_mode IN (0, 1)),
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL
);
CREATE INDEX pending_logins_expires_at ON pending_logins (expires_at);

CREATE TABLE kv (
    scope      TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    expires_at INTEGER NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX kv_expires_at ON kv (expires_at);

CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    domain   TEXT    NOT NULL,
    idp_id   TEXT    NULL,
    user_id  INTEGER NULL,
    username TEXT    NOT NULL,
    method   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    ip       TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE TABLE login_failures (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE INDEX login_failures_at     ON login_failures (at);

CREATE TABLE idp_history (
    idp_id          TEXT    PRIMARY KEY,
    last_success_at INTEGER NOT NULL
);
