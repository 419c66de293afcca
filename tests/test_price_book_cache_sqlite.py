"""The price generation's triggers on SQLite (a real SQLite file, a subprocess as a person runs it):
migrated, the guard is healthy; a raw UPDATE through another connection is seen by the next batch of a
process whose cache is warm; a dropped trigger is reported (aicost.E014) and schema_repair recreates it."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SCRIPT = """
import django, json, sqlite3, sys
django.setup()
from django.db import connection
from ingest.services import usage_record
from pricing import selectors
from schemaguard.guard import schema_report

def cost():
    return str(usage_record(model_name="gpt-4o", prompt_tokens=1_000_000, completion_tokens=0).cost)

first, warm = cost(), cost()
book = selectors._book_cache.book
other = sqlite3.connect(sys.argv[1])  # Another connection: its own transaction, committed.
other.execute("UPDATE ai_model_price_version SET input_price_per_million = '11.5' WHERE effective_to IS NULL "
              "AND pricing_id = (SELECT id FROM ai_model_pricing WHERE model_name = 'gpt-4o')")
other.commit()
other.close()
after = cost()
print(json.dumps({"first": first, "warm": warm, "after": after, "reloaded": selectors._book_cache.book is not book,
                  "errors": [f.id for f in schema_report().errors]}))
"""


def _env(db: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "AICOST_PG_"))}
    env.update(DEBUG="true", DATABASE_URL=f"sqlite:///{db}", DJANGO_SETTINGS_MODULE="aicost.settings")
    env["AICOST_ENV_FILE"] = "/dev/null"
    return env


def _run(db: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(db), capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_sqlite_triggers_keep_the_cache_current_and_the_guard_watches_them(tmp_path):
    db = tmp_path / "aicost.sqlite3"
    _run(db, "manage.py", "migrate", "-v0")
    seen = json.loads(_run(db, "-c", SCRIPT, str(db)).stdout.strip().splitlines()[-1])
    assert seen["first"] == seen["warm"]
    assert seen["after"] == "11.5" or seen["after"].startswith("11.50")
    assert seen["reloaded"]
    assert "aicost.E014" not in seen["errors"]
    with sqlite3.connect(db) as raw:
        raw.execute("DROP TRIGGER ai_model_name_pattern_price_generation_insert")
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--database", "default"],
        cwd=ROOT,
        env=_env(db),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "aicost.E014" in check.stdout + check.stderr
    assert "ai_model_name_pattern_price_generation_insert" in check.stdout + check.stderr
    _run(db, "manage.py", "schema_repair", "--apply")
    with sqlite3.connect(db) as raw:
        names = {name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "ai_model_name_pattern_price_generation_insert" in names
