"""Versioned plain-SQL migrations, applied at start-up under an advisory lock.

Files are named ``NNNN_description.sql`` and live in the service package's ``migrations/``
folder. Each service keeps its tables in its own schema. The platform tables every service needs
(processed event ids, the outbox) come from ``riskrelay/shared/migrations`` and are applied to
each schema first, tracked in ``<schema>.platform_migrations``; the service's own are tracked in
``<schema>.schema_migrations``; a checksum catches a migration edited after it was applied.
Two instances starting together serialize on a PostgreSQL advisory lock keyed by the schema, so
they cannot race.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(package: str) -> list[Migration]:
    """Read ``<package>.migrations/*.sql`` in version order; reject gaps and bad names."""
    folder: Traversable = resources.files(package).joinpath("migrations")
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {entry.name}")
        found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {expected:04d} is missing before {migration.name}")
    return found


def validate_schema_name(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}: use lower case letters, digits, _")
    return schema


async def apply_migrations(
    connection: asyncpg.Connection,
    schema: str,
    migrations: list[Migration],
    table: str = "schema_migrations",
) -> list[str]:
    """Apply pending migrations in ``schema``; return the names applied.

    Migration SQL runs with ``search_path`` set to the schema, so files use unqualified names.
    """
    schema = validate_schema_name(schema)
    lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)
    applied: list[str] = []
    await connection.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".{table} ('
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = await connection.fetch(f'SELECT version, name, checksum FROM "{schema}".{table}')
        done = {row["version"]: row for row in rows}
        for migration in migrations:
            if migration.version in done:
                if done[migration.version]["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{schema}: migration {migration.name} changed after it was applied;"
                        " add a new migration instead of editing an applied one"
                    )
                continue
            async with connection.transaction():
                await connection.execute(f'SET LOCAL search_path TO "{schema}", public')
                await connection.execute(migration.sql)
                await connection.execute(
                    f'INSERT INTO "{schema}".{table} (version, name, checksum) VALUES ($1, $2, $3)',
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied


async def migrate(dsn: str, schema: str, package: str) -> list[str]:
    """Connect, apply the platform migrations then the package's to ``schema``, disconnect."""
    connection = await asyncpg.connect(dsn)
    try:
        platform = await apply_migrations(
            connection, schema, load_migrations("riskrelay.shared"), table="platform_migrations"
        )
        return platform + await apply_migrations(connection, schema, load_migrations(package))
    finally:
        await connection.close()
