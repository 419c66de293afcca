"""core.compiled: a query compiled once gives what the ORM gives, with the data of each call."""

from decimal import Decimal

import pytest

from alerts.models import GlobalBudget
from alerts.selectors import _prices_and_global_budget, _prices_and_global_budget_query
from core.compiled import compiled_values
from pricing.models import ModelPricing

pytestmark = pytest.mark.django_db


def _orm(include_global: bool) -> list[tuple]:
    return list(_prices_and_global_budget_query(include_global))


@pytest.mark.parametrize("include_global", [True, False])
def test_the_compiled_budget_query_reads_what_the_orm_reads_after_every_change(include_global):
    ModelPricing.objects.update(monthly_budget=None)
    first = _prices_and_global_budget(include_global)
    assert first == _orm(include_global)
    assert all(row[3] is None for row in first)

    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal("12.50"))
    GlobalBudget.objects.update_or_create(
        pk=GlobalBudget.SINGLETON_ID, defaults={"monthly_budget": Decimal("99.25"), "currency": "CNY"}
    )
    again = _prices_and_global_budget(include_global)
    assert again == _orm(include_global)
    budgeted = {row[0]: row[3] for row in again if row[3] is not None}
    assert budgeted == {"gpt-4o": Decimal("12.50")}
    assert isinstance(budgeted["gpt-4o"], Decimal)
    assert {(row[4], row[5]) for row in again} == ({(Decimal("99.25"), "CNY")} if include_global else {(None, None)})


def test_a_name_is_compiled_once_and_its_rows_follow_the_data():
    built = []

    def build():
        built.append(1)
        return ModelPricing.objects.filter(model_name="gpt-4o").values_list("monthly_budget")

    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=Decimal("1.00000001"))
    assert compiled_values("test.compiled_once", build) == [(Decimal("1.00000001"),)]
    ModelPricing.objects.filter(model_name="gpt-4o").update(monthly_budget=None)
    assert compiled_values("test.compiled_once", build) == [(None,)]
    assert len(built) == 1
