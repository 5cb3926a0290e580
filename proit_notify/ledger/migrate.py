"""Ledger upgrades (SPEC §8): a stored schema version and in-place migrations.

``pip install -U`` and the next cron run must just work. The ledger's database keeps its
schema version in ``<ledger.table>_meta``; a ledger without that table is version 1 (every
ledger made before upgrades existed). On its first run a newer tool brings an older ledger
up to :data:`SCHEMA_VERSION`, step by step, in place (``ALTER TABLE``, never
drop-and-recreate), so every old row keeps its meaning.

Two hosts that start the new version at once are safe: each step is idempotent (a column
that another host has just added is the step done, not an error) and the version moves
only forward, by a conditional UPDATE. A login without DDL rights gets exit 3 naming
``proit-notify ledger migrate --print`` (the statements, for a DBA). An older tool started
on a newer ledger refuses before it writes anything (:func:`refuse_newer`).

A migration is one :class:`Step`: its version, what it does, and its statements per
dialect (SQL Server's included, checked by the T-SQL test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__
from ..db import Database, Dialect
from ..errors import ConfigError, ErpError, MissingObjectError
from .bounces import ddl as bounces_ddl
from .table import Table

#: the schema this version of the tool writes (and brings older ledgers up to)
SCHEMA_VERSION = 4
VERSION_KEY = "schema_version"
UPGRADED_BY_KEY = "upgraded_by"


@dataclass(frozen=True)
class Step:
    """One migration: from ``version - 1`` to ``version``."""

    version: int
    what: str
    #: the statements for a dialect, given the ledger's table name
    statements: Callable[[str, Dialect], list[str]]
    #: whether the step is already done (a host that just did it, a retried upgrade)
    done: Callable[[Database, str], bool]
    #: statements whose failure is no reason to stop (an index that is there already)
    optional: Callable[[str, Dialect], list[str]] = lambda table, dialect: []
    #: the tables it creates (a DBA who runs it grants the tool's login its rows)
    tables: Callable[[str], list[str]] = lambda table: []


def _add_column(table: str, dialect: Dialect, column: str, kind: str) -> str:
    q = dialect.quote
    keyword = "" if dialect is Dialect.MSSQL else "COLUMN "  # T-SQL: ALTER TABLE t ADD c ...
    return f"ALTER TABLE {q(table)} ADD {keyword}{column} {kind}"


def _varchar(dialect: Dialect, size: int) -> str:
    return f"NVARCHAR({size})" if dialect is Dialect.MSSQL else f"VARCHAR({size})"


def has_column(db: Database, table: str, column: str) -> bool:
    """Whether ``table`` has ``column`` (a query that selects it runs)."""
    try:
        list(db.stream(f"SELECT {column} FROM {db.dialect.quote(table)} WHERE 1 = 0"))
        return True
    except (ErpError, MissingObjectError):
        return False
    finally:
        db.rollback()


def message_id_index(table: str, dialect: Dialect) -> list[str]:
    """The index bounces are matched by (SPEC §10)."""
    exists = "" if dialect is Dialect.MSSQL else "IF NOT EXISTS "
    name = dialect.quote(f"{table.rpartition('.')[2]}_msgid")
    return [f"CREATE INDEX {exists}{name} ON {dialect.quote(table)} (message_id)"]


def bounces_table(table: str) -> str:
    """The bounced addresses' table of the ledger ``table`` (schema 3)."""
    return f"{table}_bounces"


STEPS: tuple[Step, ...] = (
    Step(
        2,
        "the Message-ID of every email is kept (bounces are matched by it, SPEC §10)",
        lambda table, dialect: [
            _add_column(table, dialect, "message_id", _varchar(dialect, 250))
        ],
        lambda db, table: has_column(db, table, "message_id"),
        message_id_index,
    ),
    Step(
        3,
        "addresses that bounced are kept: no email to them until the ERP's value changes "
        "(SPEC §10)",
        lambda table, dialect: bounces_ddl(bounces_table(table), dialect),
        lambda db, table: db.has_table(bounces_table(table)),
        tables=lambda table: [bounces_table(table)],
    ),
    Step(
        4,
        "run records count the bounces a run found",
        lambda table, dialect: [
            _add_column(f"{table}_runs", dialect, "n_bounced", "INTEGER NOT NULL DEFAULT 0")
        ],
        lambda db, table: has_column(db, f"{table}_runs", "n_bounced"),
    ),
)


def meta_ddl(table: str, dialect: Dialect) -> list[str]:
    """The table that keeps the schema version (created with the ledger's)."""
    vc = "NVARCHAR" if dialect is Dialect.MSSQL else "VARCHAR"
    exists = "" if dialect is Dialect.MSSQL else "IF NOT EXISTS "
    return [
        f"CREATE TABLE {exists}{dialect.quote(table)} ("
        f"name {vc}(40) NOT NULL, value {vc}(200) NOT NULL, PRIMARY KEY (name))"
    ]


class Versions(Table):
    """The schema version of one ledger database (``<ledger.table>_meta``)."""

    def __init__(self, db: Database, table: str, ledger_table: str) -> None:
        super().__init__(db, table)
        self.ledger_table = ledger_table

    def stored(self) -> int:
        """The version the ledger has: 1 without a version table (made before upgrades)."""
        if not self.db.has_table(self.table):
            return 1
        rows = self.read(
            f"SELECT value FROM {self._q} WHERE name = ?",
            [VERSION_KEY],
            what="reading the ledger's schema version failed",
        )
        self.db.rollback()
        return int(str(rows[0]["value"])) if rows else 1

    def upgraded_by(self) -> str:
        rows = self.read(f"SELECT value FROM {self._q} WHERE name = ?", [UPGRADED_BY_KEY])
        self.db.rollback()
        return str(rows[0]["value"]) if rows else "an unknown version"

    def pending(self, stored: int) -> list[Step]:
        return [step for step in STEPS if step.version > stored]

    def statements(self, stored: int) -> list[str]:
        """What brings a ledger of version ``stored`` up to date (``ledger migrate --print``):
        the steps, then the rows that record the new version (values of ours, literal)."""
        dialect = self.db.dialect
        found = [] if stored > 1 else list(meta_ddl(self.table, dialect))
        created = [] if stored > 1 else [self.table]
        for step in self.pending(stored):
            found += step.statements(self.ledger_table, dialect)
            found += step.optional(self.ledger_table, dialect)
            created += step.tables(self.ledger_table)
        # run by a DBA, the new tables are the DBA's: this login gets their rows
        login = login_of(self.db)
        if login is not None:
            found += [grant_sql(table, dialect, login) for table in created]
        found.append(
            f"DELETE FROM {self._q} WHERE name IN ('{VERSION_KEY}', '{UPGRADED_BY_KEY}')"
        )
        return found + self.rows_sql(self.table, dialect, SCHEMA_VERSION)

    @staticmethod
    def rows_sql(table: str, dialect: Dialect, version: int) -> list[str]:
        """The rows that record ``version``, literal (values of ours): for a DBA."""
        rows = {VERSION_KEY: str(version), UPGRADED_BY_KEY: __version__}
        return [
            f"INSERT INTO {dialect.quote(table)} (name, value) VALUES ('{k}', '{v}')"
            for k, v in rows.items()
        ]

    def record(self, version: int) -> None:
        """Move the stored version forward to ``version`` (never back: of two hosts that
        upgrade at once, both arrive at the same version)."""
        for name, value in ((VERSION_KEY, str(version)), (UPGRADED_BY_KEY, __version__)):
            with self.errors("recording the ledger's schema version failed"):
                inserted = self.db.insert_unique(
                    f"INSERT INTO {self._q} (name, value) VALUES (?, ?)", [name, value]
                )
                self.db.commit()
            if inserted:
                continue
            if name == VERSION_KEY:
                # only forward: compared as numbers, whatever the column's type
                current = self.stored()
                if current >= version:
                    continue
            self.write(
                f"UPDATE {self._q} SET value = ? WHERE name = ?",
                [value, name],
                what="recording the ledger's schema version failed",
            )

    def upgrade(self, stored: int) -> list[str]:
        """Bring the ledger from ``stored`` to :data:`SCHEMA_VERSION`; what was done."""
        done = []
        for step in self.pending(stored):
            if not step.done(self.db, self.ledger_table):
                for statement in step.statements(self.ledger_table, self.db.dialect):
                    self._apply(step, statement)
            for statement in step.optional(self.ledger_table, self.db.dialect):
                try:  # MySQL/MariaDB < 10.5 know no CREATE INDEX IF NOT EXISTS
                    self.db.execute(statement)
                    self.db.commit()
                except ErpError:
                    self.db.rollback()  # there already (another host), or not allowed
            self.record(step.version)
            done.append(f"schema {step.version}: {step.what}")
        return done

    def _apply(self, step: Step, statement: str) -> None:
        try:
            self.db.execute(statement)
            self.db.commit()
        except ErpError as exc:
            self.db.rollback()
            if step.done(self.db, self.ledger_table):
                return  # another host upgrading at the same moment did this very step
            raise ConfigError(
                f"the ledger {self.ledger_table} on {self.db.where} must be upgraded to schema "
                f"{SCHEMA_VERSION} and this login cannot do it ({_first(exc)}). A DBA runs the "
                "statements of 'proit-notify ledger migrate --print' once; until then "
                "nothing is sent"
            ) from None


def login_of(db: Database) -> str | None:
    """The login the tool connects as (None for SQLite, or when it cannot be read)."""
    query = {
        Dialect.POSTGRESQL: "SELECT current_user AS login",
        Dialect.MYSQL: "SELECT CURRENT_USER() AS login",
        Dialect.MSSQL: "SELECT USER_NAME() AS login",
    }.get(db.dialect)
    if query is None:
        return None
    try:
        rows = list(db.stream(query))
    except (ErpError, MissingObjectError):
        return None
    finally:
        db.rollback()
    return str(rows[0]["login"]) if rows and rows[0]["login"] else None


def grant_sql(table: str, dialect: Dialect, login: str) -> str:
    """The rows of ``table`` for ``login``: what the tool does with a ledger table."""
    if dialect is Dialect.MYSQL:
        user, _, host = login.rpartition("@")
        who = "'{}'@'{}'".format(*((x or d).replace("'", "''") for x, d in
                                    ((user, login), (host, "%"))))  # fmt: skip
    elif dialect is Dialect.MSSQL:
        who = "[" + login.replace("]", "]]") + "]"
    else:  # a login is one name, whatever dots it has (not schema.table)
        who = '"' + login.replace('"', '""') + '"'
    return f"GRANT SELECT, INSERT, UPDATE, DELETE ON {dialect.quote(table)} TO {who}"


def refuse_newer(stored: int, upgraded_by: Callable[[], str]) -> None:
    """An older tool never writes into a ledger a newer one has upgraded (SPEC §8)."""
    if stored > SCHEMA_VERSION:
        raise ConfigError(
            f"this ledger was upgraded by version {upgraded_by()} (schema {stored}); this "
            f"proit-notify ({__version__}) knows schema {SCHEMA_VERSION} at most and writes "
            "nothing into it: update it on this host too (pip install -U proit-notify)"
        )


def _first(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
