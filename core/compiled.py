"""Small read queries that run on every ingestion batch, compiled by the ORM once per process.

The ORM compiles a queryset each time it is evaluated; for a small query on the ingestion path that
is most of its cost (about a millisecond for a query with two subqueries). These are compiled once
per name and database, and their SQL, parameters and result converters kept."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connections
from django.db.models import QuerySet


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    converters: list  # (column position, (converter functions, expression)), as the ORM applies them


_compiled: dict[tuple[str, str], _Compiled] = {}


def compiled_values(name: str, build: Callable[[], QuerySet], *, using: str = "default") -> list[tuple]:
    """The rows of the values_list queryset `build()` returns, read from database `using`, as
    `list(build())` would give them. `build` must make the same query every time (no argument that
    varies): it is called once per name and database, and its compiled form reused."""
    connection = connections[using]
    compiled = _compiled.get((name, using))
    if compiled is None:
        compiled = _compiled[(name, using)] = _compile(build().using(using))
    with connection.cursor() as cursor:
        cursor.execute(compiled.sql, compiled.params)
        rows = cursor.fetchall()
    if not compiled.converters:
        return [tuple(row) for row in rows]
    return [_converted(row, compiled.converters, connection) for row in rows]


def _compile(queryset: QuerySet) -> _Compiled:
    compiler = queryset.query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    columns = [select[0] for select in compiler.select[: compiler.col_count]]
    return _Compiled(sql=sql, params=tuple(params), converters=list(compiler.get_converters(columns).items()))


def _converted(row: Iterable, converters: list, connection) -> tuple:
    values = list(row)
    for position, (functions, expression) in converters:
        value = values[position]
        for function in functions:
            value = function(value, expression, connection)
        values[position] = value
    return tuple(values)
