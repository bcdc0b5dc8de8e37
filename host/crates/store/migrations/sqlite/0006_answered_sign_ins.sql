-- A pending sign-in is 'begun' (the browser left for the IdP; plugin_state is the
-- plugin's) or 'answered' (the IdP's POSTed answer was validated at the ACS; plugin_state
-- is the identity it gave, waiting for the same-site finish step where the browser's
-- binding cookie is sent). Each row is taken once, by the step of its own stage.
-- Kept in step with ../postgres/0006_answered_sign_ins.sql.
ALTER TABLE pending_logins ADD COLUMN stage TEXT NOT NULL DEFAULT 'begun' CHECK (stage IN ('begun', 'answered'));
