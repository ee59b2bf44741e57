"""Cluster-level set-up of the lab's metadata database: roles, the database, URLs.

Roles are cluster-wide, so creating them is idempotent (several lab databases may share a
server) and ``drop`` leaves them in place. The owner role owns every table, as
``streamhouse`` does in docker-compose, and so bypasses row-level security; the reader role
is what a least-privilege bot would get: SELECT everywhere, UPDATE on ``partition_leases``
(for the lease-reset action), no BYPASSRLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from lab.metadata.profiles import Spelling

_URL_SCHEMES = ("postgresql", "postgres")
_CREDENTIAL_PARAMS = frozenset({"user", "password", "dbname"})


@dataclass(frozen=True)
class Roles:
    """The owner and reader roles and their passwords (trust auth ignores passwords)."""

    owner: str = "streamhouse"
    owner_password: str = "streamhouse"  # docker-compose's, see facts §3.1
    reader: str = "streamhouse_reader"
    reader_password: str = "streamhouse_reader"


def url_for(base_url: str, *, user: str, password: str, database: str) -> str:
    """``base_url`` (URL or key=value conninfo) with another user, password and database."""
    parts = urlsplit(base_url)
    if parts.scheme not in _URL_SCHEMES:
        params = conninfo_to_dict(base_url)
        params.update(user=user, password=password, dbname=database)
        return make_conninfo("", **params)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in _CREDENTIAL_PARAMS]
    path = "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, netloc, path, urlencode(query, safe="/"), ""))


def admin_url_for(admin_url: str, database: str) -> str:
    """The admin URL pointed at ``database`` (same user and password)."""
    parts = urlsplit(admin_url)
    if parts.scheme not in _URL_SCHEMES:
        params = conninfo_to_dict(admin_url)
        params["dbname"] = database
        return make_conninfo("", **params)
    path = "/" + quote(database, safe="")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


ROLES_LOCK = 0x5348_4C41_4252  # "SHLABR": serialises role set-up across labs


async def ensure_roles(admin_url: str, roles: Roles) -> None:
    """Create the owner and reader login roles if missing and (re)set their attributes."""
    async with (
        await psycopg.AsyncConnection.connect(admin_url) as admin,
        admin.transaction(),
    ):
        # Roles are cluster-wide: two labs starting at once on one server would otherwise
        # race on the same rows ("tuple concurrently updated").
        await admin.execute("select pg_advisory_xact_lock(%s)", (ROLES_LOCK,))
        for name, password in (
            (roles.owner, roles.owner_password),
            (roles.reader, roles.reader_password),
        ):
            await admin.execute(_create_role(name))
            alter = sql.SQL("alter role {} login nosuperuser nobypassrls password {}")
            await admin.execute(alter.format(sql.Identifier(name), sql.Literal(password)))


def _create_role(name: str) -> sql.Composed:
    """CREATE ROLE that tolerates a concurrent or earlier creation of the same role."""
    return sql.SQL(
        "do $$ begin create role {} login; "
        "exception when duplicate_object or unique_violation then null; end $$"
    ).format(sql.Identifier(name))


async def create_database(admin_url: str, database: str, owner: str, *, replace: bool) -> None:
    """Create ``database`` owned by ``owner``; with ``replace``, drop an existing one first."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        if replace:
            drop = sql.SQL("drop database if exists {} with (force)")
            await admin.execute(drop.format(sql.Identifier(database)))
        # FILE_COPY copies the tiny template in one go; the default WAL_LOG strategy
        # (PostgreSQL 15+) writes it block by block through the WAL and is ~2x slower here.
        create = sql.SQL("create database {} owner {} strategy file_copy")
        await admin.execute(create.format(sql.Identifier(database), sql.Identifier(owner)))


async def apply_schema(owner_url: str, spelling: Spelling) -> None:
    """Run the profile's schema script as the owner, in one transaction."""
    async with await psycopg.AsyncConnection.connect(owner_url) as owner:
        await owner.execute(spelling.ddl.encode())
        await owner.commit()


async def grant_reader(admin_db_url: str, database: str, roles: Roles) -> None:
    """Give the reader role SELECT on every table and UPDATE on ``partition_leases``."""
    reader = sql.Identifier(roles.reader)
    statements = (
        sql.SQL("grant connect on database {} to {}").format(sql.Identifier(database), reader),
        sql.SQL("grant usage on schema public to {}").format(reader),
        sql.SQL("grant select on all tables in schema public to {}").format(reader),
        sql.SQL("grant update on partition_leases to {}").format(reader),
    )
    async with await psycopg.AsyncConnection.connect(admin_db_url, autocommit=True) as admin:
        for statement in statements:
            await admin.execute(statement)


async def drop_database(admin_url: str, database: str) -> None:
    """Drop ``database``, ending any sessions still connected to it."""
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        drop = sql.SQL("drop database if exists {} with (force)")
        await admin.execute(drop.format(sql.Identifier(database)))
