-- Tickets by SMS (issue #17). The buyer's mobile number, E.164 ("+4917012345678"), validated and normalised
-- by the issuer before it is stored; NULL when none was given. Portable SQL.
ALTER TABLE orders ADD COLUMN phone TEXT;

-- The outbox carries SMS as well as mail: `channel` says how a job is delivered ('email' or 'sms'). Every
-- job before this migration is a mail. Same retries, backoff, dead letters and admin retry for both.
ALTER TABLE email_jobs ADD COLUMN channel TEXT NOT NULL DEFAULT 'email';
