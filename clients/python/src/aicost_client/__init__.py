"""aicost-client: send LLM usage to aicost without blocking the caller.

from aicost_client import AicostClient

with AicostClient("https://aicost.example.com", api_key="aic_...") as aicost:
    aicost.record(model_name="gpt-4o-mini", prompt_tokens=1200, completion_tokens=300, decision_id="order-1234")
"""

from aicost_client._core import FIELDS, TOKEN_FIELDS, Stats
from aicost_client.aio import AsyncAicostClient
from aicost_client.client import AicostClient
from aicost_client.providers import (
    anthropic_record,
    configure,
    default_client,
    openai_record,
    record_anthropic,
    record_openai,
)

__all__ = [
    "FIELDS",
    "TOKEN_FIELDS",
    "AicostClient",
    "AsyncAicostClient",
    "Stats",
    "anthropic_record",
    "configure",
    "default_client",
    "openai_record",
    "record_anthropic",
    "record_openai",
]
__version__ = "0.1.0"
