-- Streamhouse metadata as the runbooks (commit 8b45026) spell it.
--
-- partition_leases uses the runbook's column names (agent_id, lease_epoch); times are ms
-- since the Unix epoch, as in the real schema. The runbooks query no agents table, so there
-- is none: in this profile a holder's liveness comes from its pod. The schema_registry_*
-- tables follow the registry crate's own (older, organization-less) migration, which is
-- what the runbook's "\dt schema_registry*" and orphan-version queries expect.

create table partition_leases (
    topic            text    not null,
    partition_id     integer not null,
    agent_id         text    not null,
    lease_epoch      bigint  not null default 1,
    lease_expires_at bigint  not null,  -- ms
    acquired_at      bigint  not null,  -- ms
    primary key (topic, partition_id)
);
create index partition_leases_agent_idx on partition_leases (agent_id);
create index partition_leases_expiry_idx on partition_leases (lease_expires_at);

create table schema_registry_schemas (
    id                serial primary key,
    schema_format     varchar(20) not null,  -- avro | protobuf | json
    schema_definition text        not null,
    schema_hash       varchar(64) not null unique,  -- sha-256 hex
    created_at        timestamptz not null default now()
);

create table schema_registry_versions (
    id         serial primary key,
    subject    varchar(255) not null,
    version    integer      not null,
    schema_id  integer      not null references schema_registry_schemas (id),
    created_at timestamptz  not null default now(),
    unique (subject, version)
);
create index schema_registry_versions_subject_idx on schema_registry_versions (subject);

create table schema_registry_subject_config (
    subject       varchar(255) primary key,
    compatibility varchar(20)  not null,
    updated_at    timestamptz  not null default now()
);

create table schema_registry_global_config (
    id            boolean     primary key default true check (id),
    compatibility varchar(20) not null default 'backward',
    updated_at    timestamptz not null default now()
);
insert into schema_registry_global_config (id) values (true);
