-- What an incident is about (the diagnose target: topic, partition, agent, schema), so
-- an action's preview and its fresh guard re-run the runbook on the same target.
ALTER TABLE incidents ADD COLUMN target jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Watch actions (CB-A1, TH-A1, WAL-A1) poll their checks over a window and stop at the
-- first "fixed"; the polls left are then cancelled. A verification stops at its last run.
ALTER TABLE action_verifications
    ADD COLUMN stop_when_fixed boolean NOT NULL DEFAULT false;
ALTER TABLE action_verifications DROP CONSTRAINT action_verifications_state_check;
ALTER TABLE action_verifications ADD CONSTRAINT action_verifications_state_check
    CHECK (state IN ('pending', 'running', 'done', 'cancelled'));

-- A run claimed by a bot that then stopped is claimed again once it is stale.
ALTER TABLE action_verifications ADD COLUMN claimed_at timestamptz;
