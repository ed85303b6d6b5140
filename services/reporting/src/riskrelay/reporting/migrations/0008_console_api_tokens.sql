-- People's API tokens for scripts: only the SHA-256 of each token's secret is kept. A token is
-- exchanged at reporting for the person's short-lived signed token, so no other service reads
-- this table. `external` marks a person signed in through OpenID Connect (no console_users row):
-- their token carries the name, e-mail and roles they had when they created it.
CREATE TABLE console_api_tokens (
    token_id text PRIMARY KEY,
    secret_hash text NOT NULL,
    user_id text NOT NULL,
    email text NOT NULL,
    name text NOT NULL,
    person_name text NOT NULL,
    roles text[] NOT NULL,
    external boolean NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX console_api_tokens_user ON console_api_tokens (user_id, created_at);
