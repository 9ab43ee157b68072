-- Users with roles and passwords, and service-account tokens. Portable SQL,
-- append-only.

-- 'admin' or 'user'. Existing users (made before auth existed) are users.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
-- A password hash in crypt(3) form (bcrypt `$2b$…`, or an imported
-- htpasswd apr1/SHA entry); NULL for users who cannot log in by password.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- Not unique: without auth, users are whatever clients call themselves,
-- and two machines may both say "root". Accounts made for login are kept
-- unique by name by the server when it creates them.
CREATE INDEX users_name ON users (name);

-- Only a hash of each token is kept: the secret is shown once, at creation.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    name          TEXT NOT NULL,
    -- SHA-256 of the whole token, hex.
    hash          TEXT NOT NULL UNIQUE,
    created_at    DOUBLE PRECISION NOT NULL,
    expires_at    DOUBLE PRECISION,
    last_used_at  DOUBLE PRECISION,
    revoked_at    DOUBLE PRECISION
);

CREATE INDEX tokens_user ON tokens (user_id);
