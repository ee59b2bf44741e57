-- Streamhouse metadata as the code at HEAD has it: the subset of the consolidated schema
-- (001_schema.sql after 002_remove_default_org.sql) that an incident bot touches.
-- See streamhouse-facts.md §3. Times are BIGINT ms since the Unix epoch, except the
-- schema registry's TIMESTAMPTZ columns. No default organization row: 002 deleted it.

create table organizations (
    id         uuid primary key default gen_random_uuid(),
    name       varchar(255) not null,
    slug       varchar(63)  not null unique,
    plan       varchar(50)  not null default 'free',
    status     varchar(20)  not null default 'active',
    created_at bigint       not null,
    updated_at bigint       not null,
    settings   jsonb        not null default '{}'
);

create table topics (
    organization_id uuid    not null references organizations (id) on delete cascade,
    name            text    not null,
    partition_count integer not null check (partition_count > 0),
    retention_ms    bigint,
    cleanup_policy  text    not null default 'delete',
    created_at      bigint  not null,
    updated_at      bigint  not null,
    config          jsonb   not null default '{}'::jsonb,
    primary key (organization_id, name)
);

create table partitions (
    organization_id uuid    not null references organizations (id) on delete cascade,
    topic           text    not null,
    partition_id    integer not null,
    high_watermark  bigint  not null default 0,  -- next offset; advanced only by S3 flushes
    created_at      bigint  not null,
    updated_at      bigint  not null,
    primary key (organization_id, topic, partition_id),
    foreign key (organization_id, topic)
        references topics (organization_id, name) on delete cascade
);

create table segments (
    id              text primary key,  -- <topic>-<partition>-<base_offset>
    organization_id uuid    not null references organizations (id) on delete cascade,
    topic           text    not null,
    partition_id    integer not null,
    base_offset     bigint  not null,
    end_offset      bigint  not null,  -- inclusive
    record_count    integer not null,
    size_bytes      bigint  not null,
    s3_bucket       text    not null,
    s3_key          text    not null,
    created_at      bigint  not null,  -- time of the upload
    min_timestamp   bigint  not null,
    max_timestamp   bigint  not null,
    foreign key (organization_id, topic, partition_id)
        references partitions (organization_id, topic, partition_id) on delete cascade,
    check (end_offset >= base_offset)
);
create unique index segments_location_idx on segments (topic, partition_id, base_offset);
create index segments_created_at_idx on segments (created_at);

create table agents (
    agent_id          text primary key,
    organization_id   uuid references organizations (id) on delete set null,
    address           text   not null unique,  -- gRPC address
    availability_zone text   not null,
    agent_group       text   not null,
    last_heartbeat    bigint not null,
    started_at        bigint not null,
    metadata          jsonb  not null default '{}'::jsonb
);
create index agents_heartbeat_idx on agents (last_heartbeat);

create table partition_leases (
    organization_id  uuid    not null references organizations (id) on delete cascade,
    topic            text    not null,
    partition_id     integer not null,
    leader_agent_id  text    not null references agents (agent_id) on delete cascade,
    lease_expires_at bigint  not null,
    acquired_at      bigint  not null,
    epoch            bigint  not null default 1,
    primary key (topic, partition_id),  -- not organization-scoped, as upstream
    foreign key (organization_id, topic, partition_id)
        references partitions (organization_id, topic, partition_id) on delete cascade
);
create index partition_leases_agent_idx on partition_leases (leader_agent_id);
create index partition_leases_expiry_idx on partition_leases (lease_expires_at);
create index partition_leases_org_idx on partition_leases (organization_id);

create table lease_transfers (
    transfer_id         text primary key,
    topic               text    not null,
    partition_id        integer not null,
    from_agent_id       text    not null,
    to_agent_id         text    not null,
    from_epoch          bigint  not null,
    state               text    not null default 'pending',
    reason              text    not null,
    initiated_at        bigint  not null,
    completed_at        bigint,
    timeout_at          bigint  not null,
    last_flushed_offset bigint,
    high_watermark      bigint,
    error               text
);

create table leader_changes (
    id            bigserial primary key,
    topic         text    not null,
    partition_id  integer not null,
    from_agent_id text,
    to_agent_id   text    not null,
    reason        text    not null,
    epoch         bigint  not null,
    gap_ms        bigint  not null default 0,
    changed_at    bigint  not null
);

create table schema_registry_schemas (
    id                serial primary key,
    organization_id   uuid        not null references organizations (id) on delete cascade,
    schema_format     varchar(20) not null,
    schema_definition text        not null,
    schema_hash       varchar(64) not null unique,  -- globally, not per organization
    created_at        timestamptz not null default now()
);

create table schema_registry_versions (
    id              serial primary key,
    organization_id uuid         not null references organizations (id) on delete cascade,
    subject         varchar(255) not null,
    version         integer      not null,
    schema_id       integer      not null
        references schema_registry_schemas (id) on delete cascade,
    created_at      timestamptz  not null default now(),
    unique (subject, version)
);

create table schema_registry_subject_config (
    subject         varchar(255) primary key,
    organization_id uuid         not null references organizations (id) on delete cascade,
    compatibility   varchar(20)  not null,  -- lower snake case
    updated_at      timestamptz  not null default now()
);

create table schema_registry_global_config (
    id            boolean     primary key default true check (id),
    compatibility varchar(20) not null default 'backward',
    updated_at    timestamptz not null default now()
);
insert into schema_registry_global_config (id) values (true);

-- Row-level security, as upstream: enabled but not forced, so the owner and superusers
-- bypass it and every other role sees only the rows of app.current_organization_id
-- (unset: the all-zero organization, which no longer exists, hence zero rows).
alter table organizations enable row level security;
alter table topics enable row level security;
alter table partitions enable row level security;
alter table segments enable row level security;
alter table partition_leases enable row level security;

create policy tenant_isolation_organizations on organizations
    for all using (id = coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    ));
create policy tenant_isolation_topics on topics
    for all using (organization_id = coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    ));
create policy tenant_isolation_partitions on partitions
    for all using (organization_id = coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    ));
create policy tenant_isolation_segments on segments
    for all using (organization_id = coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    ));
create policy tenant_isolation_partition_leases on partition_leases
    for all using (organization_id = coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    ));

-- Like upstream, the setting is transaction-local (set_config(..., true)): outside an
-- explicit transaction it lasts only for the SELECT that calls it.
create function set_tenant_context(org_id uuid) returns void language plpgsql as $$
begin
    perform set_config('app.current_organization_id', org_id::text, true);
end;
$$;

create function get_tenant_context() returns uuid language sql stable as $$
    select coalesce(
        nullif(current_setting('app.current_organization_id', true), '')::uuid,
        '00000000-0000-0000-0000-000000000000'::uuid
    )
$$;
