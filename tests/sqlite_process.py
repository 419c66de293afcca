"""Running aicost on a SQLite file in a separate process: the suite itself runs on PostgreSQL, while
the embedded default (bin/dev) is SQLite."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def sqlite_environment(database: Path) -> dict[str, str]:
    """This process's environment pointed at the SQLite file `database` (local settings: DEBUG on)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "AICOST_PG_"))}
    env.update(
        DEBUG="true",
        ALLOWED_HOSTS="testserver,127.0.0.1,localhost",
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_SETTINGS_MODULE="aicost.settings",
    )
    return env


def sqlite_python(database: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python ARGS...` (a script with -c, or manage.py and a command) on the SQLite file `database`."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=sqlite_environment(database),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
