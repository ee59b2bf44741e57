-- Slack delivers events and interactions at least once and retries when we are slow, so
-- every delivery key (event_id, or trigger_id for interactions) is remembered here: the
-- first insert wins, across all replicas. Housekeeping deletes old keys by seen_at.
CREATE TABLE slack_deliveries (
    key     text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX slack_deliveries_seen_at_idx ON slack_deliveries (seen_at);
