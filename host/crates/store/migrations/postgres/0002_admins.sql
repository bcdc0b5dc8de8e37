-- Administrators: who may reload the configuration, run test sign-ins and edit other
-- users' profiles. Kept in step with ../sqlite/0002_admins.sql.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1));
-- The bootstrap account of an existing database was named `admin`.
UPDATE users SET is_admin = 1 WHERE username = 'admin' AND auth_source = 'local';
