-- One row per risk: the classifier's remembered state (riskrelay.classifier.domain.RiskState).
CREATE TABLE risks (
    risk_id text PRIMARY KEY,
    state jsonb NOT NULL,
    level smallint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
