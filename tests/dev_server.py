"""The README's first command, `bin/dev`, run for real from a test: on a temporary SQLite file, with its
env file in the same directory, on a free port, and with the venv that runs the tests (whose stamps
bin/test wrote, so nothing is installed). The environment is a fresh developer shell's: no DEBUG,
SECRET_KEY or database settings from the test run leak in. Used by tests/test_bin_dev.py and the
browser end-to-end test."""

import http.cookiejar
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.gunicorn_server import free_port, healthz_wait

ROOT = Path(__file__).resolve().parent.parent
BIN_DEV = ROOT / "bin" / "dev"
# What a developer's shell has; everything else (DEBUG, SECRET_KEY, DATABASE_URL, ...) is left out.
SHELL_VARIABLES = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TMPDIR", "TERM")
SERVING = re.compile(r"^Serving on (http://\S+?)/admin/$", re.MULTILINE)
LOGIN = re.compile(r"^Staff login: (\S+) / (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class DevSetup:
    """One local installation: its database and env file live in `directory`."""

    directory: Path
    port: int

    @property
    def database(self) -> Path:
        return self.directory / "db.sqlite3"

    @property
    def env_file(self) -> Path:
        return self.directory / ".env"

    def environment(self) -> dict[str, str]:
        shell = {name: os.environ[name] for name in SHELL_VARIABLES if name in os.environ}
        return {
            **shell,
            "AICOST_DEV_ADDR": f"127.0.0.1:{self.port}",
            "DATABASE_URL": f"sqlite:///{self.database}",
            "AICOST_ENV_FILE": str(self.env_file),
            "AICOST_VENV": sys.prefix,
            "PYTHONUNBUFFERED": "1",
        }


def dev_setup(directory: Path) -> DevSetup:
    return DevSetup(directory=directory, port=free_port())


@dataclass
class DevServer:
    """A running bin/dev. `output()` is everything it printed so far (stdout and stderr)."""

    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def printed_url(self) -> str | None:
        """The address bin/dev says it serves (without /admin/), once it has said it."""
        match = SERVING.search(self.output())
        return match.group(1) if match else None

    @property
    def url(self) -> str:
        url = self.printed_url()
        assert url, f"bin/dev printed no 'Serving on' line:\n{self.output()[-3000:]}"
        return url

    def get_status(self, path: str) -> int:
        try:
            return urllib.request.urlopen(f"{self.url}{path}", timeout=30).status  # noqa: S310 -- loopback
        except urllib.error.HTTPError as error:
            return error.code

    def printed_login(self) -> tuple[str, str] | None:
        """(username, password) when bin/dev printed a new password; None when it kept the old one."""
        match = LOGIN.search(self.output())
        return (match.group(1), match.group(2)) if match else None


def _start(setup: DevSetup, log: Path) -> subprocess.Popen:
    with log.open("wb") as output:
        return subprocess.Popen(
            [str(BIN_DEV)],
            cwd=ROOT,
            env=setup.environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: runserver's reloader child stops with it
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@contextmanager
def dev_serving(setup: DevSetup, *, name: str = "bin-dev", seconds: float = 240) -> Iterator[DevServer]:
    """bin/dev started on `setup`, serving; stopped (SIGTERM to its process group) afterwards."""
    log = setup.directory / f"{name}.log"
    server = DevServer(process=_start(setup, log), log=log)
    try:
        healthz_wait(server.printed_url, server.process, seconds=seconds, name="bin/dev", log=server.output)
        yield server
    finally:
        _stop(server.process)


def dev_run_to_exit(setup: DevSetup, *, name: str = "bin-dev", seconds: float = 240) -> tuple[int, str]:
    """(exit status, output) of bin/dev on `setup` when it is expected to stop by itself (e.g. on a broken
    schema). Should it serve instead, it is stopped and the test fails."""
    log = setup.directory / f"{name}.log"
    process = _start(setup, log)
    try:
        status = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"bin/dev kept running for {seconds} s:\n{log.read_text()[-3000:]}") from timeout
    finally:
        _stop(process)
    return status, log.read_text(errors="replace")


def dev_manage(setup: DevSetup, *arguments: str, seconds: float = 240) -> subprocess.CompletedProcess:
    """`python manage.py <arguments>` in the venv, as the developer types it after bin/dev: nothing exported,
    the settings come from the env file bin/dev wrote."""
    return subprocess.run(
        [str(Path(setup.environment()["AICOST_VENV"]) / "bin" / "python"), "manage.py", *arguments],
        cwd=ROOT,
        env=setup.environment(),
        capture_output=True,
        text=True,
        timeout=seconds,
        check=False,
    )


class Browser:
    """A cookie-keeping HTTP client for the admin's session login."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path: str):
        return self.opener.open(f"{self.base_url}{path}", timeout=30)

    def admin_login(self, username: str, password: str) -> bool:
        """Log in through /admin/login/ as a person would; True when the admin index opens afterwards."""
        form = self.get("/admin/login/?next=/admin/").read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        data = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 -- loopback
            f"{self.base_url}/admin/login/", data=data, headers={"Referer": f"{self.base_url}/admin/login/"}
        )
        response = self.opener.open(request, timeout=30)
        return urllib.parse.urlsplit(response.geturl()).path == "/admin/" and "sessionid" in {
            cookie.name for cookie in self.cookies
        }
