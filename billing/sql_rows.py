"""Plain SQL for the recorder (billing/recording.py): the models' own tables and columns,
quoted by the backend, values through its adapters and back through Django's converters, so
what goes in and comes out is exactly what the ORM would write and read."""

# S608: the statements are built from the models' own table and column names, quoted by the
# backend; every value is a parameter.
# ruff: noqa: S608

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection
from django.db.models import Model

IN_CHUNK = 500  # ids per IN (...): well under SQLite's and PostgreSQL's parameter limits


def time_adapter() -> Callable[[datetime], Any]:
    """The backend's own adapter for an aware UTC datetime, or on SQLite in UTC what it comes
    to (the naive datetime's str), without its per-call checks."""
    if connection.vendor == "sqlite" and connection.timezone == UTC:
        return lambda moment: str(moment.astimezone(UTC).replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value


def json_adapter(model: type[Model], name: str) -> Callable[[Any], Any]:
    """The backend's own adapter for the JSONField's values, or on SQLite (a text column) the
    same JSON from orjson: json.dumps's output without its spaces, a tenth of its cost (two of
    these a usage record)."""
    field = _field(model, name)
    if connection.vendor == "sqlite" and field.encoder is None:
        return lambda value: orjson.dumps(value).decode()
    prep = field.get_db_prep_save
    return lambda value: prep(value, connection)


def table(model: type[Model]) -> str:
    return _quoted(connection.vendor, model, None)[0]


def columns(model: type[Model], names: Iterable[str]) -> list[str]:
    return list(_quoted(connection.vendor, model, tuple(names)))


@functools.cache
def _quoted(vendor: str, model: type[Model], names: tuple[str, ...] | None) -> tuple[str, ...]:
    """The table's quoted name (names None), or the named fields' quoted columns."""
    quote = connection.ops.quote_name
    if names is None:
        return (quote(model._meta.db_table),)
    return tuple(quote(_field(model, name).column) for name in names)


def _field(model: type[Model], name: str) -> Any:
    # A concrete field of the model (get_field's type also covers relations' reverse sides).
    return model._meta.get_field(name)


def for_update() -> str:
    return " FOR UPDATE" if connection.features.has_select_for_update else ""


def select_in(
    cursor: Any, model: type[Model], column: str, wanted: str, values: Iterable[Any]
) -> list[Any]:
    values = list(values)
    found: list[Any] = []
    quote = connection.ops.quote_name
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        marks = ", ".join(["%s"] * len(chunk))
        cursor.execute(
            f"SELECT {quote(wanted)} FROM {table(model)} WHERE {quote(column)} IN ({marks})",
            chunk,
        )
        found.extend(row[0] for row in cursor.fetchall())
    return found


def insert(
    cursor: Any,
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    if not rows:
        return
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {table(model)} ({', '.join(columns(model, names))}) VALUES ({marks})"
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    cursor.executemany(sql, rows)


@functools.cache
def _converters(vendor: str, model: type[Model], names: tuple[str, ...]) -> tuple[Any, ...]:
    """Per column, (expression, converters) as the ORM reads it on this backend."""
    out = []
    for name in names:
        field = _field(model, name)
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        out.append((column, tuple(converters)))
    return tuple(out)


def select_rows(
    cursor: Any,
    model: type[Model],
    names: tuple[str, ...],
    where: str,
    params: Sequence[Any],
    order: Sequence[str],
) -> list[list[Any]]:
    """Rows locked (FOR UPDATE where the backend has it) in `order`, read as the ORM reads."""
    sql = (
        f"SELECT {', '.join(columns(model, names))} FROM {table(model)} WHERE {where}"
        f" ORDER BY {', '.join(columns(model, order))}{for_update()}"
    )
    cursor.execute(sql, params)
    converters = _converters(connection.vendor, model, names)
    rows = []
    for raw in cursor.fetchall():
        row = list(raw)
        for index, (column, functions) in enumerate(converters):
            for function in functions:
                row[index] = function(row[index], column, connection)
        rows.append(row)
    return rows
