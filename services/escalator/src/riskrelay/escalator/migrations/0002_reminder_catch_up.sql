-- The catch-up rule (riskrelay.escalator.domain.catch_up): of a reminder series found more than
-- its interval behind, only the latest due reminder fires; the others are kept as `skipped`,
-- with `covered_by` naming the escalation-due event that stood for them.
ALTER TABLE timers ADD COLUMN repeat_every interval;
ALTER TABLE timers ADD COLUMN covered_by text;
ALTER TABLE timers DROP CONSTRAINT timers_state_check;
ALTER TABLE timers ADD CONSTRAINT timers_state_check
    CHECK (state IN ('pending', 'fired', 'skipped', 'cancelled'));

-- Pending reminders stored before this migration take their interval from their frozen plan.
UPDATE timers t
SET repeat_every = (e.plan #>> '{rules,level_policy,reminders,every}')::interval
FROM escalations e
WHERE e.risk_id = t.risk_id AND e.plan_version = t.plan_version
  AND t.reason = 'reminder' AND t.state = 'pending';
