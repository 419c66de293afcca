"""record_openai / record_anthropic on the objects the real SDKs return (provider_answers: the
documented JSON through httpx2.MockTransport), sent by a real AicostClient to a local HTTP server."""

from datetime import UTC, datetime

import provider_answers as answers
import pytest
from aicost_client import (
    AicostClient,
    anthropic_record,
    configure,
    openai_record,
    record_anthropic,
    record_openai,
)
from fake_aicost import FakeAicost


@pytest.fixture
def sent():
    """Record through a real client to a local server; yields a function giving the records it received."""
    with FakeAicost() as fake:
        client = AicostClient(fake.url, "aic_test", flush_interval=0.05)

        def received():
            assert client.flush(timeout=10)
            return fake.sent_records()

        received.client = client
        yield received
        client.close()


def test_a_chat_completion_is_recorded_with_its_usage_object_model_id_and_moment(sent):
    completion = answers.chat_completion()
    record_openai(completion, client=sent.client, decision_id="order-1", user_id=42, purpose="qa", response_time=0.8)
    (record,) = sent()
    assert record["usage"] == completion.usage.model_dump()
    assert record["usage"]["prompt_tokens_details"]["cached_tokens"] == 1920
    assert record["model_name"] == "gpt-4o-mini-2024-07-18"
    assert record["idempotency_key"] == "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert record["timestamp"] == datetime.fromtimestamp(1764500000, UTC).isoformat()
    assert (record["decision_id"], record["user_id"], record["purpose"], record["response_time"]) == (
        "order-1",
        42,
        "qa",
        0.8,
    )
    assert "prompt_tokens" not in record  # The usage object only: the server maps it.


def test_a_chat_stream_is_recorded_from_its_final_chunk(sent):
    chunks = answers.chat_stream_final_chunk()
    with pytest.raises(ValueError, match="include_usage"):
        record_openai(chunks[1], client=sent.client)
    record_openai(chunks[-1], client=sent.client, decision_id="s-1")
    (record,) = sent()
    assert record["usage"]["prompt_tokens"] == 19
    assert record["usage"]["completion_tokens"] == 10
    assert record["idempotency_key"] == "chatcmpl-stream-7"
    assert record["model_name"] == "gpt-4o-mini-2024-07-18"


def test_a_responses_api_response_and_its_completed_event_are_recorded(sent):
    response = answers.response()
    events = answers.response_stream_events_received()
    record_openai(response, client=sent.client, decision_id="r-1")
    record_openai(events[-1], client=sent.client, decision_id="r-2")  # response.completed
    first, second = sent()
    for record in (first, second):
        assert record["usage"]["input_tokens_details"]["cached_tokens"] == 1024
        assert record["usage"]["output_tokens_details"]["reasoning_tokens"] == 640
        assert record["model_name"] == "gpt-4.1-2025-04-14"
        assert record["idempotency_key"] == response.id
        assert record["timestamp"] == datetime.fromtimestamp(1764500200, UTC).isoformat()
    with pytest.raises(ValueError, match="carries no usage"):
        record_openai(events[1], client=sent.client)


def test_a_failed_response_is_recorded_as_a_failure():
    failed = answers.response().model_copy(update={"status": "failed"})
    failed.error = type("Error", (), {"message": "The model crashed", "code": "server_error"})()
    fields = openai_record(failed)
    assert fields["success"] is False
    assert fields["error_message"] == "The model crashed"


def test_an_anthropic_message_is_recorded_with_cache_writes_and_reads(sent):
    message = answers.message()
    record_anthropic(message, client=sent.client, decision_id="a-1", user_id=7, purpose="chat")
    (record,) = sent()
    assert record["usage"] == message.usage.model_dump()
    assert record["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100}
    assert record["usage"]["cache_read_input_tokens"] == 100000
    assert record["model_name"] == "claude-sonnet-4-5-20250929"
    assert record["idempotency_key"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert (record["decision_id"], record["user_id"], record["purpose"]) == ("a-1", 7, "chat")


def test_an_anthropic_stream_is_recorded_from_its_final_message(sent):
    final = answers.message_streamed()
    record_anthropic(final, client=sent.client)
    (record,) = sent()
    assert record["usage"]["input_tokens"] == 25
    assert record["usage"]["cache_read_input_tokens"] == 2000
    assert record["usage"]["output_tokens"] == 15
    assert record["idempotency_key"] == "msg_stream_01"


def test_fields_given_win_over_the_response_and_the_configured_client_is_the_default(sent):
    configure(sent.client)
    try:
        record_openai(answers.chat_completion(), model_name="my-gpt", idempotency_key="k-1", timestamp=None)
    finally:
        configure(None)
    (record,) = sent()
    assert record["model_name"] == "my-gpt"
    assert record["idempotency_key"] == "k-1"
    assert record["timestamp"] == datetime.fromtimestamp(1764500000, UTC).isoformat()  # None: not given.


def test_plain_json_dicts_work_as_well():
    fields = anthropic_record(answers.MESSAGE, decision_id="d")
    assert fields["usage"] == answers.MESSAGE["usage"]
    assert fields["decision_id"] == "d"
    assert openai_record(answers.CHAT_COMPLETION)["usage"] == answers.CHAT_COMPLETION["usage"]
