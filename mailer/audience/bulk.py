"""Bulk inserts inside the caller's transaction, by the fastest path each driver offers.

Used where thousands of rows go in at once (an import's members, interests, fields and their
consent-log lines): no per-row ORM objects and no per-row parameter processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, values already as the database stores them) into
    ``table`` inside the current transaction (``insert_rows``)."""
    if not rows:
        return
    columns = list(rows[0])
    getter = itemgetter(*columns)
    values = list(map(getter, rows)) if len(columns) > 1 else [(getter(row),) for row in rows]
    insert_rows(conn, table, columns, values)


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples of values for ``columns``, already as the database stores them) into
    ``table`` inside the current transaction, by the fastest path each driver offers.

    SQLite: the compiled INSERT through the driver's ``executemany``, with none of SQLAlchemy's
    per-row parameter processing. PostgreSQL: ``COPY … FROM STDIN`` on the same connection, several
    times faster than ``executemany`` (a statement per row) or multi-row VALUES.
    """
    if not rows:
        return
    columns = list(columns)
    if conn.dialect.name != "postgresql":
        compiled = insert(table).compile(dialect=conn.dialect, column_keys=columns)
        order = list(compiled.positiontup or [])
        if order != columns:  # the statement wants them in another order
            getter = itemgetter(*(columns.index(k) for k in order))
            rows = list(map(getter, rows)) if len(order) > 1 else [(getter(row),) for row in rows]
        conn.exec_driver_sql(str(compiled), list(rows))
        return
    import psycopg
    from psycopg import sql

    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:  # raise it as SQLAlchemy would have (IntegrityError, …)
        statement = copy_sql.as_string(raw)
        raise DBAPIError.instance(statement, None, exc, psycopg.Error) from exc
