"""aicost_client.litellm.AicostLogger with the real litellm package and its mock_response: success
and failure, completion and acompletion, sent by a real AicostClient to a local HTTP server."""

import asyncio
import os
import time

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # litellm must not fetch its price map.

import litellm
import pytest
from aicost_client import AicostClient, AsyncAicostClient
from aicost_client.litellm import usage_fields
from fake_aicost import FakeAicost
from litellm_logger import LOGGER

QUESTION = [{"role": "user", "content": "The capital of France?"}]
METADATA = {"decision_id": "order-9", "user_id": 42, "purpose": "qa"}


@pytest.fixture
def fake():
    with FakeAicost() as server:
        yield server


@pytest.fixture
def logged(fake):
    """litellm with an AicostLogger on a real client; yields the client, restores litellm's callbacks."""
    client = AicostClient(fake.url, "aic_test", flush_interval=0.05)
    LOGGER.client = client
    yield client
    client.close()


def _records(fake, client, count):
    """Once litellm's logging (a background thread for sync calls) has recorded `count` calls."""
    for _ in range(500):
        if client.stats.queued >= count:
            break
        time.sleep(0.01)
    assert client.flush(timeout=10)
    return fake.sent_records()


def test_a_successful_completion_is_recorded_with_model_tokens_time_and_metadata(fake, logged):
    response = litellm.completion(model="gpt-4o-mini", messages=QUESTION, mock_response="Paris.", metadata=METADATA)
    (record,) = _records(fake, logged, 1)
    assert record["model_name"] == response.model
    assert record["prompt_tokens"] == response.usage.prompt_tokens
    assert record["completion_tokens"] == response.usage.completion_tokens
    assert record["prompt_tokens"] > 0
    assert record["completion_tokens"] > 0
    assert (record["decision_id"], record["user_id"], record["purpose"]) == ("order-9", 42, "qa")
    assert 0 <= record["response_time"] < 30
    assert record.get("success", True) is True
    assert record["idempotency_key"] == response.id
    assert record["timestamp"].endswith("+00:00")


def test_a_failed_completion_is_recorded_as_a_failure_with_its_error(fake, logged):
    with pytest.raises(litellm.exceptions.InternalServerError):
        litellm.completion(
            model="gpt-4o-mini", messages=QUESTION, mock_response=Exception("upstream is down"), metadata=METADATA
        )
    (record,) = _records(fake, logged, 1)
    assert record["success"] is False
    assert "upstream is down" in record["error_message"]
    assert record["model_name"] == "gpt-4o-mini"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (0, 0)
    assert record["decision_id"] == "order-9"
    assert record["response_time"] >= 0


def test_acompletion_success_and_failure_are_recorded(fake):
    async def main():
        async with AsyncAicostClient(fake.url, "aic_test", flush_interval=0.05) as client:
            LOGGER.client = client
            await litellm.acompletion(
                model="claude-sonnet-4-5", messages=QUESTION, mock_response="Paris.", metadata={"decision_id": "a1"}
            )
            with pytest.raises(litellm.exceptions.InternalServerError):
                await litellm.acompletion(
                    model="gpt-4o-mini",
                    messages=QUESTION,
                    mock_response=Exception("the model crashed"),
                    metadata={"decision_id": "a2", "purpose": "retry"},
                )
            for _ in range(500):
                if client.stats.queued >= 2:
                    break
                await asyncio.sleep(0.01)
            assert await client.flush(timeout=10)

    asyncio.run(main())
    by_decision = {record["decision_id"]: record for record in fake.sent_records()}
    assert set(by_decision) == {"a1", "a2"}
    assert by_decision["a1"]["model_name"].startswith("claude-sonnet-4-5")
    assert by_decision["a1"]["completion_tokens"] > 0
    assert by_decision["a1"].get("success", True) is True
    assert by_decision["a2"]["success"] is False
    assert "the model crashed" in by_decision["a2"]["error_message"]
    assert by_decision["a2"]["purpose"] == "retry"


def test_litellm_usage_with_cache_and_reasoning_maps_onto_the_token_kinds():
    usage = litellm.Usage(
        prompt_tokens=3000,
        completion_tokens=700,
        total_tokens=3700,
        prompt_tokens_details={"cached_tokens": 2000, "cache_creation_tokens": 500, "audio_tokens": 0},
        completion_tokens_details={"reasoning_tokens": 400},
    )
    assert usage_fields(usage) == {
        "prompt_tokens": 3000,
        "completion_tokens": 700,
        "cached_tokens": 2000,
        "cache_write_5m_tokens": 500,
        "reasoning_tokens": 400,
    }


def test_metadata_keys_are_configurable(fake):
    client = AicostClient(fake.url, "aic_test", flush_interval=0.05)
    LOGGER.client, keys = client, LOGGER.metadata_keys
    LOGGER.metadata_keys = {**keys, "decision_id": "trace_id"}
    try:
        litellm.completion(model="gpt-4o-mini", messages=QUESTION, mock_response="ok", metadata={"trace_id": "t-5"})
        (record,) = _records(fake, client, 1)
    finally:
        LOGGER.metadata_keys = keys
        client.close()
    assert record["decision_id"] == "t-5"
