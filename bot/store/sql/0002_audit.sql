-- The tamper-evident audit trail. Each event's hash covers the previous event's hash and
-- its own canonical content (see bot/audit.py), so editing or removing a row breaks the
-- chain from that row on. Rows are appended under an advisory lock, so ids follow chain
-- order (the sequence keeps its default CACHE 1 for that reason).
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    incident_id text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text,
    kind        text NOT NULL,
    body        jsonb NOT NULL,
    prev_hash   text NOT NULL,
    hash        text NOT NULL UNIQUE
);

CREATE INDEX audit_events_incident_idx ON audit_events (incident_id, id);

-- Append-only: the database itself refuses changes, not only the bot's code.
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- Events still to be posted to their Slack thread; a row stays until Slack accepted it.
CREATE TABLE audit_outbox (
    event_id        bigint PRIMARY KEY REFERENCES audit_events,
    channel         text NOT NULL,
    thread_ts       text,
    posted_ts       text,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text
);

CREATE INDEX audit_outbox_pending_idx ON audit_outbox (channel, thread_ts, event_id)
    WHERE posted_ts IS NULL;
