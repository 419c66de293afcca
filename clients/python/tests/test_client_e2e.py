"""The client against a live gunicorn serving aicost on the test PostgreSQL (tests/gunicorn_server.py),
with a fault proxy in front of it: every record is stored exactly once after lost answers, 503s and
reset connections, priced, with the token kinds the SDK objects carry; a 400's record is left out."""

import asyncio
import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import provider_answers as answers
import pytest
from aicost_client import AicostClient, AsyncAicostClient, record_anthropic, record_openai
from django.db import transaction
from django.db.models import Count
from fake_aicost import FaultProxy

from pricing.models import ModelPricing, PatternKind
from pricing.services import model_name_patterns_set
from tests.gunicorn_server import gunicorn_serving, shared_test_database_url
from usage.keys import api_key_create
from usage.models import ApiKeyScope, CostSource, UsageLog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


# The providers answer with dated snapshots: the operator lists them as prefixes (README, Model names).
SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-", "gpt-4.1": "gpt-4.1-", "claude-sonnet-4-5": "claude-sonnet-4-5-"}


@pytest.fixture
def aicost():
    """(base URL of a live gunicorn, a write_usage API key)."""
    _key, raw_key = api_key_create(name="client-e2e", scope=ApiKeyScope.WRITE_USAGE)
    with transaction.atomic():
        for model, prefix in SNAPSHOTS.items():
            pricing = ModelPricing.objects.get(model_name=model)
            model_name_patterns_set(pricing=pricing, patterns=[(PatternKind.PREFIX, prefix)])
    with gunicorn_serving(database_url=shared_test_database_url(), workers=2) as url:
        yield url, raw_key


def _client(url, key, **options):
    return AicostClient(url, key, **{"flush_interval": 0.05, "backoff_base": 0.05, "backoff_max": 0.5, **options})


def test_retried_batches_are_stored_exactly_once_and_priced(aicost):
    url, key = aicost
    faults = ["lose_answer", "unavailable", "reset", "lose_answer", "forward", "unavailable"]
    with FaultProxy(url, faults) as proxy:
        with _client(proxy.url, key, batch_size=100, senders=1) as client:  # One sender: the faults' order is known.
            client.record_many(
                {
                    "model_name": "gpt-4o-mini",
                    "decision_id": f"order-{n}",
                    "user_id": 1 + n % 7,
                    "prompt_tokens": 1000 + n,
                    "completion_tokens": 100,
                    "cached_tokens": 500,
                    "response_time": 0.5,
                    "purpose": "e2e",
                }
                for n in range(1000)
            )
        played = list(proxy.played)
    assert played[:6] == faults
    rows = UsageLog.objects.filter(purpose="e2e")
    assert rows.count() == 1000
    assert rows.values("decision_id").distinct().count() == 1000
    assert not rows.values("decision_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not rows.exclude(cost_source=CostSource.COMPUTED).exists()
    assert not rows.filter(cost__isnull=True).exists()
    stats = client.stats
    # The first batch's answer was lost after the server stored it; it was sent four more times (503,
    # reset, lost again, answered): the server counted it as duplicates, stored once.
    assert stats.duplicates == 100
    assert stats.delivered == 900
    assert stats.retries == 5
    assert stats.requests == 15
    assert (stats.dropped, stats.rejected, stats.failed, stats.abandoned, stats.pending) == (0, 0, 0, 0, 0)


def test_sdk_objects_and_litellm_calls_are_stored_with_their_token_kinds(aicost):
    import litellm
    from litellm_logger import LOGGER

    url, key = aicost
    with _client(url, key) as client:
        completion = answers.chat_completion()
        record_openai(completion, client=client, decision_id="chat", user_id=3, purpose="sdk")
        record_openai(completion, client=client, decision_id="chat", user_id=3, purpose="sdk")  # Same call twice.
        record_openai(answers.chat_stream_final_chunk()[-1], client=client, decision_id="chat-stream", purpose="sdk")
        record_openai(answers.response(), client=client, decision_id="responses", purpose="sdk")
        record_anthropic(answers.message(), client=client, decision_id="anthropic", purpose="sdk")
        record_anthropic(answers.message_streamed(), client=client, decision_id="anthropic-stream", purpose="sdk")
        LOGGER.client = client
        try:
            litellm.completion(
                model="gpt-4o",
                messages=answers.QUESTION,
                mock_response="Paris.",
                metadata={"decision_id": "litellm", "purpose": "sdk", "user_id": 9},
            )
            for _ in range(500):
                if client.stats.queued >= 7:
                    break
                asyncio.run(asyncio.sleep(0.01))
        finally:
            LOGGER.client = None
    rows = {row.decision_id: row for row in UsageLog.objects.filter(purpose="sdk")}
    assert sorted(rows) == sorted(["chat", "chat-stream", "responses", "anthropic", "anthropic-stream", "litellm"])
    assert client.stats.duplicates == 1  # The chat completion recorded twice: stored once (its id is the key).
    chat, anthropic, responses = rows["chat"], rows["anthropic"], rows["responses"]
    assert (chat.model_name, chat.sent_model_name) == ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert (chat.prompt_tokens, chat.cached_tokens, chat.completion_tokens, chat.user_id) == (2006, 1920, 300, 3)
    assert (anthropic.model_name, anthropic.prompt_tokens, anthropic.completion_tokens) == (
        "claude-sonnet-4-5",
        50 + 248 + 100_000,
        503,
    )
    assert (anthropic.cached_tokens, anthropic.cache_write_5m_tokens, anthropic.cache_write_1h_tokens) == (
        100_000,
        148,
        100,
    )
    assert (responses.prompt_tokens, responses.cached_tokens, responses.reasoning_tokens) == (1328, 1024, 640)
    assert (rows["anthropic-stream"].prompt_tokens, rows["anthropic-stream"].cached_tokens) == (2025, 2000)
    assert rows["chat-stream"].prompt_tokens == 19
    assert rows["litellm"].user_id == 9
    assert rows["litellm"].completion_tokens > 0
    assert rows["litellm"].response_time is not None
    for row in rows.values():
        assert row.cost is not None, row.decision_id
        assert row.cost_source == CostSource.COMPUTED, row.decision_id


def test_a_record_the_server_refuses_is_logged_with_its_message_and_the_rest_stored(aicost, caplog):
    url, key = aicost
    caplog.set_level(logging.ERROR, logger="aicost_client")
    with _client(url, key) as client:
        client.record_many(
            {"model_name": "gpt-4o", "decision_id": f"r{n}", "purpose": "refusal", "prompt_tokens": 10}
            | ({"cached_tokens": 11} if n == 4 else {})
            for n in range(10)
        )
    stored = sorted(UsageLog.objects.filter(purpose="refusal").values_list("decision_id", flat=True))
    assert stored == sorted(f"r{n}" for n in range(10) if n != 4)
    assert client.stats.rejected == 1
    assert "records[4].cached_tokens: Cannot exceed prompt_tokens." in caplog.text
    assert "decision_id='r4'" in caplog.text


def test_the_asyncio_client_stores_each_record_once(aicost):
    url, key = aicost

    async def main():
        with FaultProxy(url, ["lose_answer", "unavailable"]) as proxy:
            async with AsyncAicostClient(proxy.url, key, flush_interval=0.05, backoff_base=0.05) as client:
                client.record_many(
                    {"model_name": "claude-sonnet-4-5", "decision_id": f"a{n}", "purpose": "async", "prompt_tokens": 5}
                    for n in range(300)
                )
        return client

    client = asyncio.run(main())
    rows = UsageLog.objects.filter(purpose="async")
    assert rows.count() == 300
    assert rows.values("decision_id").distinct().count() == 300
    assert not rows.filter(cost__isnull=True).exists()
    assert client.stats.delivered + client.stats.duplicates == 300
    assert client.stats.duplicates > 0
