-- Which IdP subject a session belongs to, so that an IdP (SAML single logout, a Connect
-- server's kill_sso_user) can end the sessions it began. Kept in step with
-- ../postgres/0005_session_subjects.sql. Sessions made before this column have none and
-- are found by their logout state only.
ALTER TABLE sessions ADD COLUMN subject TEXT;
CREATE INDEX sessions_idp_subject ON sessions (idp_id, subject);
