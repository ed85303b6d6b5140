-- What the Weekly Risk Review meeting decided about each agenda item: who, when, the decision
-- (taken through the owning service's API before it is recorded here) and the note. Shown on
-- the console's review page and in the Weekly Risk Summary of the week it was taken in.
CREATE TABLE review_decisions (
    decision_id text PRIMARY KEY,
    risk_id text NOT NULL,
    title text NOT NULL,
    level smallint CHECK (level BETWEEN 1 AND 5),
    agenda text NOT NULL
        CHECK (agenda IN ('level_1_2', 'level_3_awaiting_review', 'overdue_review')),
    decision text NOT NULL,
    detail text,
    note text,
    decided_by text NOT NULL,
    decided_by_name text NOT NULL,
    decided_at timestamptz NOT NULL
);
CREATE INDEX review_decisions_decided_at ON review_decisions (decided_at);
CREATE INDEX review_decisions_risk ON review_decisions (risk_id, decided_at);
