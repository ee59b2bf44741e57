-- Incidents: one row per incident, one Slack thread per incident (its root message is the
-- summary). Ids are SH-<n> from a sequence, so replicas never hand out the same id. State
-- moves only forward (open → acknowledged → mitigating → resolved); bot/incidents.py makes
-- every move one conditional UPDATE, so two people acknowledging at once cannot both win.
CREATE SEQUENCE incident_number_seq;

CREATE TABLE incidents (
    id              text PRIMARY KEY DEFAULT 'SH-' || nextval('incident_number_seq'),
    runbook         text,
    title           text NOT NULL,
    status          text NOT NULL,
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'acknowledged', 'mitigating', 'resolved')),
    channel         text NOT NULL,
    thread_ts       text,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    opened_by       text,
    acknowledged_by text,
    acknowledged_at timestamptz,
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER SEQUENCE incident_number_seq OWNED BY incidents.id;

CREATE INDEX incidents_unresolved_idx ON incidents (opened_at) WHERE state <> 'resolved';
