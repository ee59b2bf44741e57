-- Scheduled health digests (Part F). A channel may have several subscriptions, but not
-- the same schedule twice while both are active. Unsubscribing keeps the row (inactive),
-- so its past runs stay explained.
CREATE TABLE digest_subscriptions (
    id             bigserial PRIMARY KEY,
    channel        text NOT NULL,
    -- The normalised spelling the user sees: 'daily 09:00 Europe/Berlin', 'hourly'.
    schedule       text NOT NULL,
    timezone       text NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_posted_at timestamptz,
    active         boolean NOT NULL DEFAULT true,
    removed_by     text,
    removed_at     timestamptz
);
CREATE UNIQUE INDEX digest_subscriptions_active_idx ON digest_subscriptions (channel, schedule)
    WHERE active;

-- One row per scheduled run of a subscription, inserted to claim it: with several bot
-- replicas, the one whose INSERT ... ON CONFLICT DO NOTHING returns the row posts it.
CREATE TABLE digest_runs (
    subscription_id bigint NOT NULL REFERENCES digest_subscriptions (id),
    run_at          timestamptz NOT NULL,
    claimed_at      timestamptz NOT NULL DEFAULT now(),
    posted_at       timestamptz,
    PRIMARY KEY (subscription_id, run_at)
);
