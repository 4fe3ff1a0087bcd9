-- Staff accounts and roles (issue #15): people sign in with an email and a password instead of sharing the
-- admin token; sessions, per-account API tokens, invitations, login throttling and the audit log.
-- Every secret (session id, API token, invitation token) is stored as its SHA-256 only; passwords as
-- argon2id PHC strings.

CREATE TABLE staff_accounts (
    id            INTEGER PRIMARY KEY,
    -- Stored lower-cased (the login form lower-cases too), so one address is one account.
    email         TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'box_office', 'door_supervisor', 'viewer')),
    -- argon2id PHC string; NULL until the invitation is accepted (the account cannot sign in before).
    password_hash TEXT,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    disabled_at   INTEGER
);

-- One-time links that let a new colleague (or the first owner) set a password.
CREATE TABLE staff_invitations (
    token_hash  TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES staff_accounts (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX staff_invitations_account ON staff_invitations (account_id);

CREATE TABLE staff_sessions (
    id_hash      TEXT PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES staff_accounts (id),
    -- Echoed by the dashboard in X-CSRF-Token on every unsafe request; useless without the cookie.
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
);
CREATE INDEX staff_sessions_account ON staff_sessions (account_id);

CREATE TABLE staff_api_tokens (
    id           TEXT PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES staff_accounts (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX staff_api_tokens_account ON staff_api_tokens (account_id);

-- Failed sign-ins per key ('email:<address>' for known and unknown addresses alike, 'ip:<address>'),
-- counted in a window; a key over its limit is refused until locked_until.
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0
);

-- Every admin action: who, what, when, before/after (JSON), written in the transaction of the change.
CREATE TABLE audit_log (
    id               INTEGER PRIMARY KEY,
    at_ms            INTEGER NOT NULL,
    actor_account_id INTEGER,
    actor_email      TEXT NOT NULL,
    actor_role       TEXT NOT NULL,
    action           TEXT NOT NULL,
    target           TEXT NOT NULL,
    before_json      TEXT,
    after_json       TEXT
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_actor ON audit_log (actor_email, id);
