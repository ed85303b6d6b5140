-- Every console sign-in attempt: the e-mail typed (known or not), the client address, when, and
-- how it ended. Failed and still-pending attempts within the window rate-limit further attempts
-- per account and per address; every reporting instance counts the same rows.
CREATE TABLE console_sign_in_attempts (
    attempt_id bigserial PRIMARY KEY,
    email text NOT NULL,
    client_address text NOT NULL,
    attempted_at timestamptz NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('pending', 'failed', 'succeeded')),
    failure text
);

CREATE INDEX console_sign_in_attempts_account
    ON console_sign_in_attempts (email, attempted_at) WHERE outcome <> 'succeeded';
CREATE INDEX console_sign_in_attempts_address
    ON console_sign_in_attempts (client_address, attempted_at) WHERE outcome <> 'succeeded';
CREATE INDEX console_sign_in_attempts_time ON console_sign_in_attempts (attempted_at);
