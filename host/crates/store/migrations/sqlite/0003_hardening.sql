-- Security hardening. Kept in step with ../postgres/0003_hardening.sql.

-- A session is valid only on the hosts of the domain it was made on. Sessions made before
-- this column existed belong to no domain and so end at once (their users sign in again).
ALTER TABLE sessions ADD COLUMN domain TEXT NOT NULL DEFAULT '';

-- An admin's deliberate link of an existing local (or admin) account to an IdP instance:
-- SSO signs into such an account only through an IdP it is linked to.
CREATE TABLE idp_links (
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idp_id    TEXT    NOT NULL,
    linked_by TEXT    NOT NULL,
    linked_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, idp_id)
);

-- Password-attempt throttling: one counter row per key (address, account and address,
-- account), reserved atomically before a password is checked. Replaces login_failures.
CREATE TABLE throttle_counters (
    key          TEXT    PRIMARY KEY,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL
);
CREATE INDEX throttle_counters_window_start ON throttle_counters (window_start);
DROP TABLE login_failures;

-- Keys the host keeps for itself (the key that signs browser bindings and CSRF tokens),
-- shared by every host on one database.
CREATE TABLE host_secrets (
    name       TEXT    PRIMARY KEY,
    value      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
);
