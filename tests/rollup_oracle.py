"""Each declared rollup sum, worked out again from log rows in plain Python, independently of its
declaration (usage.rollup_sums): a declaration that sums the wrong log column, or two sums whose
sources are swapped, disagree with this. Tests iterate ROLLUP_SUMS, so a new sum without an entry
here fails them (KeyError) until its expected value is written down."""

from collections.abc import Callable, Iterable
from decimal import Decimal

import pytest

from usage.models import CostSource, UsageLog
from usage.rollup_sums import ROLLUP_SUMS

SHARE_OF_LOG: dict[str, Callable[[UsageLog], object]] = {
    "calls": lambda log: 1,
    "successful_calls": lambda log: int(log.success),
    "unpriced_calls": lambda log: int(log.cost_source == CostSource.UNPRICED),
    "prompt_tokens": lambda log: log.prompt_tokens,
    "completion_tokens": lambda log: log.completion_tokens,
    "cached_tokens": lambda log: log.cached_tokens,
    "reasoning_tokens": lambda log: log.reasoning_tokens,
    "cache_write_5m_tokens": lambda log: log.cache_write_5m_tokens,
    "cache_write_1h_tokens": lambda log: log.cache_write_1h_tokens,
    "input_audio_tokens": lambda log: log.input_audio_tokens,
    "output_audio_tokens": lambda log: log.output_audio_tokens,
    "output_image_tokens": lambda log: log.output_image_tokens,
    "cost": lambda log: Decimal(0) if log.cost is None else log.cost,
    "reporting_cost": lambda log: Decimal(0) if log.reporting_cost is None else log.reporting_cost,
    "unconverted_calls": lambda log: int(log.unconverted),
    "response_time_sum": lambda log: 0.0 if log.response_time is None else log.response_time,
    "response_time_count": lambda log: int(log.response_time is not None),
}


def expected_sums(logs: Iterable[UsageLog]) -> dict:
    """Every declared sum over `logs`, by name; float sums as pytest.approx (their order of addition
    differs between paths)."""
    logs = list(logs)
    expected = {}
    for rollup_sum in ROLLUP_SUMS:
        total = sum((SHARE_OF_LOG[rollup_sum.name](log) for log in logs), rollup_sum.type.zero)
        expected[rollup_sum.name] = pytest.approx(total, rel=1e-9, abs=1e-9) if isinstance(total, float) else total
    return expected


def sums_of(source, name_of=lambda name: name) -> dict:
    """Every declared sum of a RollupDelta or a rollup row (its column `name_of(name)`), by name."""
    return {rollup_sum.name: getattr(source, name_of(rollup_sum.name)) for rollup_sum in ROLLUP_SUMS}
