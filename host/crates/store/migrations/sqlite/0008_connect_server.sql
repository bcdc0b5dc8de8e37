-- This host as a Totara Connect server (totara/connect/db/install.xml, §6.1 of the protocol
-- notes), and tombstones of deleted users. Kept in step with ../postgres/0008_connect_server.sql.

-- The server's identity: one row, made once (get-or-create) and never changed; clients know
-- the server by it, and a clone with another idnumber would be another server.
CREATE TABLE connect_server_identity (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    idnumber   TEXT    NOT NULL
);

-- Registered client systems (totara_connect_clients). `status` 0 is active, 1 deleted: a
-- deleted client's row is kept, so its secret keeps getting "connect client is not active".
-- `serversecret_hash` (SHA-256, hex) is what a SEP call is looked up by, so the database's
-- index comparison never runs on the secret itself; the secret is then compared in
-- constant time. `restrict_audience_id` has no foreign key on purpose: deleting the audience
-- must not widen what the client sees (it then sees nobody, as in the original).
CREATE TABLE connect_clients (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    status                 INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1)),
    clientidnumber         TEXT    NOT NULL UNIQUE,
    clientsecret           TEXT    NOT NULL,
    serversecret           TEXT    NOT NULL,
    serversecret_hash      TEXT    NOT NULL UNIQUE,
    clienttype             TEXT    NOT NULL DEFAULT '',
    clienturl              TEXT    NOT NULL,
    clientname             TEXT    NOT NULL DEFAULT '',
    clientcomment          TEXT    NOT NULL DEFAULT '',
    restrict_audience_id   INTEGER NULL,
    syncprofilefields      INTEGER NOT NULL DEFAULT 0 CHECK (syncprofilefields IN (0, 1)),
    addnewaudiences        INTEGER NOT NULL DEFAULT 0 CHECK (addnewaudiences IN (0, 1)),
    addnewcourses          INTEGER NOT NULL DEFAULT 0 CHECK (addnewcourses IN (0, 1)),
    syncjobs               INTEGER NOT NULL DEFAULT 0 CHECK (syncjobs IN (0, 1)),
    allowpluginsepservices INTEGER NOT NULL DEFAULT 0 CHECK (allowpluginsepservices IN (0, 1)),
    apiversion             INTEGER NOT NULL DEFAULT 1,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
-- One active client per URL (the original's errorduplicateclient), race-safe.
CREATE UNIQUE INDEX connect_clients_active_url ON connect_clients (clienturl) WHERE status = 0;

-- What each client is sent beyond users (part 2 reads them): synced audiences
-- (totara_connect_client_cohorts), courses, and position and organisation frameworks (the
-- framework row says which kind).
CREATE TABLE connect_client_audiences (
    client_id   INTEGER NOT NULL REFERENCES connect_clients (id) ON DELETE CASCADE,
    audience_id INTEGER NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, audience_id)
);
CREATE TABLE connect_client_courses (
    client_id INTEGER NOT NULL REFERENCES connect_clients (id) ON DELETE CASCADE,
    course_id INTEGER NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, course_id)
);
CREATE TABLE connect_client_frameworks (
    client_id    INTEGER NOT NULL REFERENCES connect_clients (id) ON DELETE CASCADE,
    framework_id INTEGER NOT NULL REFERENCES hierarchy_frameworks (id) ON DELETE CASCADE,
    PRIMARY KEY (client_id, framework_id)
);

-- A user signed in to a client through this server (totara_connect_sso_sessions).
-- `session_id_hash` is the Gatehouse session (sessions.id_hash) it belongs to; no foreign
-- key, so that a token whose session has ended is answered "session expired", as the
-- original answers it. `ssotoken` is kept as sent, not hashed: the server must hand each
-- client its own token back in kill_sso_user when the session ends. No foreign key on
-- `user_id` either: a user deleted from the directory takes its sessions with it, and its
-- SSO sessions must outlive them until the cleanup has told their clients.
CREATE TABLE connect_sso_sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id       INTEGER NOT NULL REFERENCES connect_clients (id) ON DELETE CASCADE,
    user_id         INTEGER NOT NULL,
    session_id_hash TEXT    NOT NULL,
    ssotoken        TEXT    NOT NULL UNIQUE,
    active          INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
    created_at      INTEGER NOT NULL
);
CREATE INDEX connect_sso_sessions_session ON connect_sso_sessions (session_id_hash);
CREATE INDEX connect_sso_sessions_client  ON connect_sso_sessions (client_id);

-- Users deleted from the directory (which deletes rows), written in the same transaction:
-- get_users keeps reporting them as deleted so that unrestricted clients delete their
-- copies. `user_id` is the deleted user's id (never reused: AUTOINCREMENT); `username` is
-- Moodle's deleted_<32 random characters> (a uniquifier, not a secret: the database's own
-- random source is enough).
CREATE TABLE deleted_users (
    user_id    INTEGER PRIMARY KEY,
    username   TEXT    NOT NULL DEFAULT ('deleted_' || lower(hex(randomblob(16)))),
    created_at INTEGER NOT NULL,
    deleted_at INTEGER NOT NULL
);
