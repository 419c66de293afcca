"""bin/dev, the README's first command, run for real over HTTP on a temporary SQLite file: the first run
serves the demo with a printed login; a second run keeps the database, the demo data, the env file and
the password; a run after the rows were lost does not load the demo on top of the rollups; a broken
schema stops it with the guard's findings and the repair, no traceback. Plus the env file settings read."""

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dev_server import ROOT, Browser, dev_manage, dev_run_to_exit, dev_serving, dev_setup

STATS = "/api/v1/ai-platforms/stats?time_range=all"


def _log_rows(database) -> int:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT count(*) FROM ai_model_usage_log").fetchone()[0]


def _sql(database, statement: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute(statement)


def _stats_totals(browser: Browser) -> tuple[int, str]:
    summary = json.load(browser.get(STATS))["data"]["summary"]
    return summary["total_calls"], summary["total_cost"]


def _settings_as_seen_by_manage_py(setup) -> tuple[str, str]:
    """DEBUG and SECRET_KEY as a `manage.py` command in the venv sees them, nothing exported."""
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    result = dev_manage(setup, "shell", "-v0", "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    debug, secret_key = result.stdout.split()
    return debug, secret_key


@pytest.mark.slow
def test_bin_dev_runs_again_without_loss_and_stops_on_a_broken_schema(tmp_path):
    setup = dev_setup(tmp_path)

    with dev_serving(setup, name="first") as server:
        assert server.url == f"http://127.0.0.1:{setup.port}"
        first = server.output()
        assert f"Wrote {setup.env_file}" in first
        assert server.printed_login() is not None, first
        username, password = server.printed_login()
        assert server.get_status("/healthz") == 200
        browser = Browser(server.url)
        assert browser.admin_login(username, password)
        calls, cost = _stats_totals(browser)
    rows = _log_rows(setup.database)
    assert calls == rows > 1000
    env_file = setup.env_file.read_text()
    assert env_file.startswith("# Written by bin/dev")
    assert "\nDEBUG=true\n" in env_file
    assert "\nAICOST_REPORTING_CURRENCY=CNY\n" in env_file  # The demo reports in yuan.
    assert stat.S_IMODE(setup.env_file.stat().st_mode) == 0o600, "the env file holds a secret"
    debug, secret_key = _settings_as_seen_by_manage_py(setup)
    assert debug == "True"
    assert f"\nSECRET_KEY={secret_key}\n" in env_file
    assert len(secret_key) >= 50

    with dev_serving(setup, name="second") as server:
        second = server.output()
        assert server.printed_login() is None, second
        assert "Staff login: admin (password unchanged)" in second
        assert "python manage.py changepassword admin" in second
        assert f"Serving on http://127.0.0.1:{setup.port}/admin/" in second
        assert "Wrote" not in second
        browser = Browser(server.url)
        assert browser.admin_login(username, password), "the first run's password no longer logs in"
        assert _stats_totals(browser) == (calls, cost)
    assert _log_rows(setup.database) == rows
    assert setup.env_file.read_text() == env_file

    # The incident after a repair: the log's rows are gone, the rollups still count them.
    _sql(setup.database, "DELETE FROM ai_model_usage_log")
    with dev_serving(setup, name="rows-lost") as server:
        assert "demo data not loaded again" in server.output()
        browser = Browser(server.url)
        assert browser.admin_login(username, password)
        # The stats read the rollups (only the edges of the range come from the log), so they still
        # count about the first run's calls; a second demo load would double them.
        assert _stats_totals(browser)[0] <= calls, "the demo was loaded on top of the rollups"
    assert _log_rows(setup.database) == 0, "the demo was loaded again"

    _sql(setup.database, "DROP TABLE ai_model_usage_log")
    status, output = dev_run_to_exit(setup, name="broken")
    assert status != 0, output
    assert "aicost.E001" in output
    assert "ai_model_usage_log" in output
    assert "python manage.py schema_repair --apply" in output
    assert "Traceback" not in output
    assert "Serving on" not in output


def _settings_subprocess(env_file, **variables) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in {"DEBUG", "SECRET_KEY"}}
    env.update(AICOST_ENV_FILE=str(env_file), DJANGO_SETTINGS_MODULE="aicost.settings", **variables)
    code = "from django.conf import settings; print(settings.DEBUG, settings.SECRET_KEY)"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_settings_read_the_env_file_that_aicost_env_file_names(tmp_path):
    env_file = tmp_path / "local.env"
    env_file.write_text("# a comment\nDEBUG=true\nSECRET_KEY=from-the-env-file\n")
    result = _settings_subprocess(env_file)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "from-the-env-file"]


def test_real_environment_variables_win_over_the_env_file(tmp_path):
    env_file = tmp_path / "local.env"
    env_file.write_text("DEBUG=true\nSECRET_KEY=from-the-env-file\n")
    result = _settings_subprocess(env_file, DEBUG="false", SECRET_KEY="from-the-environment")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["False", "from-the-environment"]


def test_without_an_env_file_production_settings_still_require_a_secret_key():
    """bin/test points AICOST_ENV_FILE at /dev/null, so a developer's .env cannot satisfy this."""
    result = _settings_subprocess(os.devnull)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_the_env_file_bin_dev_writes_is_ignored_by_git():
    result = subprocess.run(["git", "check-ignore", ".env"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, "git would track .env (it holds the local SECRET_KEY)"


def _stamped(venv: Path, requirements: str) -> bool:
    stamp = venv / f".{requirements}.sha256"
    wanted = hashlib.sha256((ROOT / requirements).read_bytes()).hexdigest()
    return stamp.is_file() and stamp.read_text().strip() == wanted


def test_a_venv_that_bin_test_filled_serves_bin_dev_without_installing():
    """bin/test sourced bin/lib/venv.sh with both files before this ran; bin/dev's runtime file is then
    satisfied by its stamp, also when AICOST_VENV is an absolute path and the shell is elsewhere."""
    venv = Path(sys.prefix)
    if not (_stamped(venv, "requirements.txt") and _stamped(venv, "requirements-test.txt")):
        pytest.skip("the running venv was not filled by bin/lib/venv.sh (run through bin/test)")
    script = 'cd "$1" && source bin/lib/venv.sh requirements.txt && echo "PATH=${PATH%%:*}" && command -v python'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(ROOT)],
        cwd="/",
        env={**os.environ, "AICOST_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Installing" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"PATH={venv}/bin", f"{venv}/bin/python"]
