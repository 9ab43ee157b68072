-- The API server's own user (the machine's user of a server without auth,
-- whom requests that name no user belong to). One row: every server on this
-- database is that user, whatever its state directory, so a pod whose state
-- volume is new (an emptyDir) does not add another user at each start.
-- Portable SQL, append-only.
CREATE TABLE server_identity (
    id       BIGINT PRIMARY KEY,
    user_id  TEXT NOT NULL
);
