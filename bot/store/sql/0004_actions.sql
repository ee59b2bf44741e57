-- Approved remediations. A request's id is an opaque random token (the only thing its
-- buttons carry). bot/approvals.py moves ``state`` with single conditional UPDATEs
-- (``WHERE id = %s AND state = 'pending' RETURNING``), so ten concurrent clicks on one
-- request make exactly one transition, and one execution.
CREATE TABLE action_requests (
    id           text PRIMARY KEY,
    incident_id  text NOT NULL REFERENCES incidents (id),
    runbook      text NOT NULL,
    action_id    text NOT NULL,
    risk         text NOT NULL CHECK (risk IN ('low', 'medium', 'high')),
    target       text NOT NULL,
    requested_by text NOT NULL,
    reason       text NOT NULL,
    preview      jsonb NOT NULL,
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'approved', 'executing', 'succeeded', 'failed',
                                  'denied', 'expired', 'refused')),
    approved_by  text,
    decided_at   timestamptz,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    executed_at  timestamptz,
    message_ts   text,
    result       jsonb
);

-- Cooldowns look up the latest execution of an action on a target.
CREATE INDEX action_requests_target_idx ON action_requests (action_id, target, executed_at);

-- One row: whether executions are frozen (``/streamhouse freeze on|off``), by whom, when.
-- FREEZE and BY are SQL keywords: the table name is quoted, the columns are prefixed.
CREATE TABLE "freeze" (
    id        boolean PRIMARY KEY DEFAULT true CHECK (id),
    frozen    boolean NOT NULL DEFAULT false,
    frozen_by text,
    frozen_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO "freeze" (id, frozen) VALUES (true, false);

-- Verification runs scheduled after an execution; the worker claims due rows with
-- SKIP LOCKED, so they survive a restart and run once across replicas.
CREATE TABLE action_verifications (
    id          bigserial PRIMARY KEY,
    request_id  text NOT NULL REFERENCES action_requests (id),
    incident_id text NOT NULL REFERENCES incidents (id),
    runbook     text NOT NULL,
    check_ids   text[] NOT NULL,
    due_at      timestamptz NOT NULL,
    final       boolean NOT NULL,
    state       text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done')),
    fixed       boolean
);

CREATE INDEX action_verifications_due_idx ON action_verifications (due_at)
    WHERE state <> 'done';
