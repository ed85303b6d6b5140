-- One row per risk per plan version: the frozen plan (riskrelay.escalator.domain.EscalationPlan)
-- as JSON. A level change supersedes the active plan and inserts the next version; the version
-- is the fence that keeps a superseded plan's timers from firing.
CREATE TABLE escalations (
    risk_id text NOT NULL,
    plan_version integer NOT NULL CHECK (plan_version >= 1),
    level smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    state text NOT NULL CHECK (state IN ('active', 'completed', 'superseded')),
    plan jsonb NOT NULL,
    title text NOT NULL DEFAULT '',
    flagged_at timestamptz NOT NULL,
    cause_event_id text,
    -- Bumped on every change of the row (acknowledgements, supersession).
    version integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (risk_id, plan_version)
);
-- At most one running plan per risk.
CREATE UNIQUE INDEX escalations_one_current ON escalations (risk_id) WHERE state <> 'superseded';

-- One row per plan step (what an acknowledgement names and the API lists); a projection of the
-- plan JSON, written in the same transaction.
CREATE TABLE escalation_steps (
    escalation_id text PRIMARY KEY,
    risk_id text NOT NULL,
    plan_version integer NOT NULL,
    step integer NOT NULL,
    level smallint NOT NULL,
    role text NOT NULL,
    kind text NOT NULL,
    notify_at timestamptz NOT NULL,
    ack_due_at timestamptz,
    status text NOT NULL CHECK (status IN ('open', 'acknowledged', 'cancelled')),
    closed_at timestamptz,
    acknowledged_role text,
    acknowledged_by text,
    decision text,
    added_because text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (risk_id, plan_version) REFERENCES escalations (risk_id, plan_version),
    UNIQUE (risk_id, plan_version, step)
);
CREATE INDEX escalation_steps_by_status ON escalation_steps (status, notify_at, escalation_id);
CREATE INDEX escalation_steps_overdue ON escalation_steps (ack_due_at) WHERE status = 'open';

-- Durable timers. `timer_key` is the domain's deterministic key, `event_id` the deterministic id
-- of the escalation-due event it fires; `plan_version` is the fence (a timer fires only while
-- its plan is the risk's current one and its step is open).
-- Claiming, firing (the outbox row) and marking `fired` happen in one transaction.
CREATE TABLE timers (
    id bigserial PRIMARY KEY,
    timer_key text NOT NULL UNIQUE,
    escalation_id text NOT NULL,
    risk_id text NOT NULL,
    plan_version integer NOT NULL,
    level smallint NOT NULL,
    step integer NOT NULL,
    role text NOT NULL,
    step_role text NOT NULL,
    reason text NOT NULL
        CHECK (reason IN ('initial', 'reminder', 'pre_breach_warning', 'breach', 'weekly_review')),
    attempt integer NOT NULL DEFAULT 1,
    due_at timestamptz NOT NULL,
    ack_due_at timestamptz,
    timeframe_due_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'fired', 'cancelled')),
    fired_at timestamptz,
    event_id text NOT NULL,
    cancelled_reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The claim query: pending timers in due order.
CREATE INDEX timers_pending_due ON timers (due_at) WHERE state = 'pending';
CREATE INDEX timers_by_escalation ON timers (escalation_id);

-- Every acknowledgement received, accepted or not (late, repeated, superseded, rejected).
CREATE TABLE acknowledgements (
    id bigserial PRIMARY KEY,
    event_id text,
    escalation_id text NOT NULL,
    risk_id text NOT NULL,
    plan_version integer,
    role text NOT NULL,
    acknowledged_by text NOT NULL,
    acknowledged_at timestamptz NOT NULL,
    decision text,
    note text,
    source text NOT NULL CHECK (source IN ('http', 'topic')),
    outcome text NOT NULL CHECK (outcome IN ('accepted', 'already_closed', 'rejected')),
    late boolean NOT NULL DEFAULT false,
    late_by_seconds double precision,
    detail text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acknowledgements_by_escalation ON acknowledgements (escalation_id, id);

-- Notifications to deliver, queued in the transaction that fires their timer, so none is lost.
CREATE TABLE notifications (
    id bigserial PRIMARY KEY,
    delivery_key text NOT NULL UNIQUE,
    event_id text NOT NULL,
    escalation_id text NOT NULL,
    risk_id text NOT NULL,
    level smallint NOT NULL,
    role text NOT NULL,
    reason text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('webhook', 'slack', 'pagerduty')),
    target text NOT NULL,
    payload jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';
CREATE INDEX notifications_leased ON notifications (lease_until) WHERE state = 'sending';
CREATE INDEX notifications_by_escalation ON notifications (escalation_id);

-- Every delivery attempt: what was sent where, and what came back.
CREATE TABLE delivery_attempts (
    id bigserial PRIMARY KEY,
    notification_id bigint NOT NULL REFERENCES notifications (id),
    attempt integer NOT NULL,
    channel text NOT NULL,
    target text NOT NULL,
    status_code integer,
    error text,
    outcome text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    attempted_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    UNIQUE (notification_id, attempt)
);
