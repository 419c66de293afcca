"""Statements that repeat, run by name on PostgreSQL: parsed and planned once per connection.

The daily trend sends the same statement all day (its windows are calendar days): over a thousand
terms as literal rows, whose parsing and planning cost a few milliseconds each time. A statement
given here as one literal text (no parameters) is PREPAREd on a connection the first time it runs
there and EXECUTEd by name after that; a statement without parameters has one plan, kept by the
server and replanned by it whenever a table it reads changes shape. The answer is the one the text
itself gives: the same statement, one snapshot.

Each connection keeps at most PREPARED_PER_CONNECTION statements (the least recently used is
DEALLOCATEd with the next PREPARE, in the same round trip). Which statements a connection holds is
known per physical connection, so a reconnect or another pooled connection starts empty. Inside a
transaction (atomic) the text is sent as it is: a failing EXECUTE there would abort the caller's
transaction. Outside one, a statement the server no longer knows (DEALLOCATE ALL, DISCARD ALL by
someone else), or whose result types a schema change altered, is prepared again and run once more.
Other vendors run the text as it is. Prepared statements live in a server session: this needs the
connection to be one session throughout (Django's own connections and pool are; a transaction-mode
pooler such as PgBouncer's is not).
"""

import hashlib
import threading
from collections import OrderedDict
from weakref import WeakKeyDictionary

from django.db import NotSupportedError, ProgrammingError
from django.db.backends.base.base import BaseDatabaseWrapper

PREPARED_PER_CONNECTION = 32
NAME_PREFIX = "aicost_"

# The physical connection (psycopg's) -> names of the statements prepared on it, least recently used first.
_prepared: "WeakKeyDictionary[object, OrderedDict[str, None]]" = WeakKeyDictionary()
_prepared_lock = threading.Lock()  # A physical connection serves one thread at a time; the mapping is shared.


def statement_name(sql: str) -> str:
    return NAME_PREFIX + hashlib.blake2b(sql.encode(), digest_size=12).hexdigest()


def prepared_names(connection: BaseDatabaseWrapper) -> list[str]:
    """The statements this process prepared on the connection's current physical connection."""
    return list(_prepared.get(connection.connection, ()))


def fetch_all(connection: BaseDatabaseWrapper, sql: str, *, name: str | None = None) -> list[tuple]:
    """The rows of `sql` (a literal statement: no parameters), run by name on PostgreSQL outside a
    transaction; `name`: statement_name(sql), when the caller keeps it."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            cursor.execute(sql)
            return cursor.fetchall()
        name = name or statement_name(sql)
        held = _prepared.get(connection.connection)
        if held is None:
            with _prepared_lock:
                held = _prepared.setdefault(connection.connection, OrderedDict())
        try:
            return _execute(cursor, held, name, sql)
        except (ProgrammingError, NotSupportedError) as error:
            state = getattr(error.__cause__, "sqlstate", None)
            if state not in _OUT_OF_STEP and not (state == _FEATURE_NOT_SUPPORTED and name in held):
                raise
        if state == _FEATURE_NOT_SUPPORTED:  # A table it reads changed its columns' types: prepared anew.
            cursor.execute(f"DEALLOCATE {name}")
        # What this process knew of the connection was wrong (someone else deallocated or prepared):
        # read what the server holds, then run again.
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE starts_with(name, %s)", [NAME_PREFIX])
        held.clear()
        held.update((found, None) for (found,) in cursor.fetchall())
        return _execute(cursor, held, name, sql)


_OUT_OF_STEP = {"26000", "42P05"}  # invalid_sql_statement_name, duplicate_prepared_statement
_FEATURE_NOT_SUPPORTED = "0A000"  # "cached plan must not change result type"


def _execute(cursor, held: OrderedDict, name: str, sql: str) -> list[tuple]:
    if name in held:
        held.move_to_end(name)
        cursor.execute(f"EXECUTE {name}")
        return cursor.fetchall()
    dropped = []
    while len(held) >= PREPARED_PER_CONNECTION:
        dropped.append(held.popitem(last=False)[0])
    # One round trip (the simple query protocol runs several statements): drop, prepare, run.
    statements = [*(f"DEALLOCATE {old}" for old in dropped), f"PREPARE {name} AS {sql}", f"EXECUTE {name}"]
    cursor.execute("; ".join(statements))
    held[name] = None
    while cursor.nextset():
        pass
    return cursor.fetchall()
