"""The one AicostLogger litellm is given in this test process: litellm copies its callbacks into
internal lists at its first call and keeps them there, so a logger added later is never called.
Each test gives it its own client."""

import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # litellm must not fetch its price map.

import litellm
from aicost_client.litellm import AicostLogger

LOGGER = AicostLogger()
litellm.callbacks = [LOGGER]
