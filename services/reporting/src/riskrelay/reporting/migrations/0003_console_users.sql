-- The people who sign in to the console: name, e-mail, the protocol roles they hold, and an
-- argon2 password hash (never the password). Other services never read this table: they verify
-- the signed tokens the console issues.
CREATE TABLE console_users (
    user_id text PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email = lower(email)),
    name text NOT NULL,
    roles text[] NOT NULL CHECK (cardinality(roles) > 0),
    password_hash text NOT NULL,
    disabled boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
