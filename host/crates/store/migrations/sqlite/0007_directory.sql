-- The directory: what a Totara Connect server shares and a client receives, beyond users and
-- their custom profile field values (users, user_fields). Kept in step with
-- ../postgres/0007_directory.sql. Part 1 of Connect fills audiences and the Connect links;
-- the courses, hierarchies and job assignments are created now for part 2 to fill.

-- Audiences (Totara's cohorts). `component` is '' for an administrator's audience, or names
-- the Connect IdP instance that keeps it in step with its server (then only sync edits it).
CREATE TABLE audiences (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    idnumber    TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL DEFAULT '',
    description TEXT    NOT NULL DEFAULT '',
    component   TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE audience_members (
    audience_id INTEGER NOT NULL REFERENCES audiences (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (audience_id, user_id)
);
CREATE INDEX audience_members_user ON audience_members (user_id);

-- A user synced from a Connect server (auth_connect_users): one server user per local user,
-- one local user per server user.
CREATE TABLE connect_users (
    user_id         INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    idp_id          TEXT    NOT NULL,
    server_idnumber TEXT    NOT NULL,
    server_user_id  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (server_idnumber, server_user_id)
);
CREATE INDEX connect_users_idp ON connect_users (idp_id);

-- Part 2: other server ids mapped to local rows (auth_connect_ids, auth_connect_user_collections):
-- `kind` is pos_framework, org_framework, pos, org, job_assignment, cohort or course.
CREATE TABLE connect_remote_ids (
    server_idnumber TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    remote_id       INTEGER NOT NULL,
    local_id        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (server_idnumber, kind, remote_id),
    UNIQUE (kind, local_id)
);

-- Part 2: courses and who is enrolled.
CREATE TABLE courses (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    shortname  TEXT    NOT NULL UNIQUE,
    fullname   TEXT    NOT NULL DEFAULT '',
    summary    TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE course_enrolments (
    course_id   INTEGER NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enrolled_at INTEGER NOT NULL,
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX course_enrolments_user ON course_enrolments (user_id);

-- Part 2: position and organisation frameworks (`kind`) and their items, a tree by `parent_id`;
-- `type_idnumber` names the item's type ('' for none). Item idnumbers are unique per kind, as
-- job assignments name their position and organisation by idnumber.
CREATE TABLE hierarchy_frameworks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('position', 'organisation')),
    idnumber    TEXT    NOT NULL,
    fullname    TEXT    NOT NULL DEFAULT '',
    shortname   TEXT    NOT NULL DEFAULT '',
    description TEXT    NOT NULL DEFAULT '',
    visible     INTEGER NOT NULL DEFAULT 1 CHECK (visible IN (0, 1)),
    sortorder   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (kind, idnumber)
);

CREATE TABLE hierarchy_items (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL CHECK (kind IN ('position', 'organisation')),
    framework_id  INTEGER NOT NULL REFERENCES hierarchy_frameworks (id) ON DELETE CASCADE,
    parent_id     INTEGER NULL REFERENCES hierarchy_items (id) ON DELETE CASCADE,
    idnumber      TEXT    NOT NULL,
    fullname      TEXT    NOT NULL DEFAULT '',
    shortname     TEXT    NOT NULL DEFAULT '',
    description   TEXT    NOT NULL DEFAULT '',
    type_idnumber TEXT    NOT NULL DEFAULT '',
    visible       INTEGER NOT NULL DEFAULT 1 CHECK (visible IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (kind, idnumber)
);
CREATE INDEX hierarchy_items_framework ON hierarchy_items (framework_id);
CREATE INDEX hierarchy_items_parent    ON hierarchy_items (parent_id);

-- Part 2: job assignments; a job's position and organisation are items of those kinds.
CREATE TABLE job_assignments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idnumber        TEXT    NOT NULL,
    fullname        TEXT    NOT NULL DEFAULT '',
    shortname       TEXT    NOT NULL DEFAULT '',
    description     TEXT    NOT NULL DEFAULT '',
    position_id     INTEGER NULL REFERENCES hierarchy_items (id) ON DELETE SET NULL,
    organisation_id INTEGER NULL REFERENCES hierarchy_items (id) ON DELETE SET NULL,
    startdate       INTEGER NOT NULL DEFAULT 0,
    enddate         INTEGER NOT NULL DEFAULT 0,
    sortorder       INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (user_id, idnumber)
);
