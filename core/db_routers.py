"""Read replica routing: the stats, trend and export reads go to the `replica` alias, nothing else.

Django routes per model, but the same models are also read by ingestion (prices, counters), admin
and the schema guard, which must see the primary. So the router sends a read to the replica only
while a reporting selector has entered `reading_from_replica()`, and only for the models those
reports read. Installed (with the alias) only when DATABASE_REPLICA_URL is set; see settings.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import router
from django.db.models import Model

REPLICA = "replica"
REPLICA_READ_MODELS = frozenset(
    {
        "usage.usagelog",
        "usage.usagerolluphour",
        "usage.usagerolluphourtotal",
        "usage.usagerollupdaily",
        "usage.usagerollupdailytotal",
        "pricing.modelpricing",
    }
)

_reading_from_replica: ContextVar[bool] = ContextVar("reading_from_replica", default=False)


@contextmanager
def reading_from_replica() -> Iterator[None]:
    """Within this block (or a function it decorates) reporting reads may be served by the replica."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


def replica_read_alias(model: type[Model]) -> str:
    """The alias a reporting read of `model` uses now, for querysets evaluated later (streaming)."""
    with reading_from_replica():
        return router.db_for_read(model)


class ReplicaRouter:
    def db_for_read(self, model: type[Model], **hints) -> str | None:
        if _reading_from_replica.get() and model._meta.label_lower in REPLICA_READ_MODELS:
            # Without the alias (a settings module that installs the router alone) reads stay on default.
            return REPLICA if REPLICA in settings.DATABASES else None
        return None

    def db_for_write(self, model: type[Model], **hints) -> str | None:
        return None

    def allow_relation(self, obj1: Model, obj2: Model, **hints) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints) -> bool | None:
        # The replica follows the primary's schema through replication; nothing is migrated there.
        return False if db == REPLICA else None
