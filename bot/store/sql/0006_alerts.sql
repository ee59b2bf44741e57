-- Alert intake (Part E). Incidents opened by alerts carry a group key: alerts of one
-- runbook that agree on the group-by labels share the open incident of that key. The
-- partial unique index makes "open or join" one INSERT ... ON CONFLICT, so two replicas
-- receiving the same storm open each incident once.
ALTER TABLE incidents ADD COLUMN group_key text;
ALTER TABLE incidents ADD COLUMN origin text NOT NULL DEFAULT 'command';
ALTER TABLE incidents ADD COLUMN severity_rank integer NOT NULL DEFAULT 0;
-- The bot's message that shows the summary: the root it posted, or (for an alert message
-- someone else posted in a channel) its first reply in that message's thread.
ALTER TABLE incidents ADD COLUMN summary_ts text;
-- Posting state: when an alert of the incident last changed, and up to when Slack shows it.
ALTER TABLE incidents ADD COLUMN alerts_changed_at timestamptz;
ALTER TABLE incidents ADD COLUMN alerts_posted_at timestamptz;
ALTER TABLE incidents ADD COLUMN alerts_noted_at timestamptz;
ALTER TABLE incidents ADD COLUMN diagnosis_state text NOT NULL DEFAULT 'none'
    CHECK (diagnosis_state IN ('none', 'wanted', 'running', 'done'));

CREATE UNIQUE INDEX incidents_open_group_idx ON incidents (group_key)
    WHERE state <> 'resolved' AND group_key IS NOT NULL;
CREATE INDEX incidents_alert_work_idx ON incidents (severity_rank DESC, opened_at)
    WHERE origin <> 'command' AND state <> 'resolved';

-- Every alert received, once per (fingerprint, startsAt): Alertmanager re-sends a firing
-- alert every repeat interval; a re-send only counts, a status change updates the row.
CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    incident_id       text NOT NULL REFERENCES incidents (id),
    fingerprint       text NOT NULL,
    starts_at         timestamptz NOT NULL,
    alertname         text NOT NULL,
    runbook           text NOT NULL,
    status            text NOT NULL CHECK (status IN ('firing', 'resolved')),
    severity          text NOT NULL,
    labels            jsonb NOT NULL,
    annotations       jsonb NOT NULL,
    origin            text NOT NULL,
    generator_url     text,
    received_count    integer NOT NULL DEFAULT 1,
    first_received_at timestamptz NOT NULL DEFAULT now(),
    last_received_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at       timestamptz,
    UNIQUE (fingerprint, starts_at)
);
CREATE INDEX alerts_incident_idx ON alerts (incident_id, status);

-- Slack allows about one message per second per channel: every replica takes a slot here
-- before chat.postMessage, so the bot as a whole keeps to it.
CREATE TABLE channel_pace (
    channel      text PRIMARY KEY,
    next_post_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE incidents ADD COLUMN diagnosis_claimed_at timestamptz;
