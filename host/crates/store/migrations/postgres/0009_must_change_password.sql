-- Accounts that must choose a new password at their next password sign-in (the bootstrap
-- administrator's generated password, or `gatehouse users set-password --must-change`):
-- until they do, their sessions reach only the password page. Kept in step with
-- ../sqlite/0009_must_change_password.sql.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0
    CHECK (must_change_password IN (0, 1));
