"""The service as production runs it (gunicorn with gunicorn.conf.py, WhiteNoise), on loopback over
plain HTTP: HTTPS redirect, HSTS and secure cookies are off for this server only. Used by the
end-to-end, fault and load tests."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shared_test_database_url() -> str:
    """DATABASE_URL pointing at the test database this process is using, for a server to share it."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


def healthz_wait(base_url, server: subprocess.Popen, *, seconds: float, name: str, log=lambda: "") -> None:
    """Until `base_url()`/healthz answers; fails as soon as `server` exits. `base_url()` is None while
    the address is not known yet (bin/dev prints it); `log()`: the server's output, quoted on failure."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"{name} exited with status {server.returncode} before serving:\n{log()[-3000:]}")
        if (url := base_url()) is not None:
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=2)  # noqa: S310 -- loopback
                return
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer {base_url()}/healthz within {seconds} s:\n{log()[-3000:]}")


@contextmanager
def gunicorn_serving(
    *, database_url: str, workers: int = 2, env: dict | None = None, log=None, port: int | None = None
) -> Iterator[str]:
    """Yield the base URL of a gunicorn serving aicost on `database_url` (on `port`, default a free
    one: a given port lets a bench stop the server and start it again at the same address); stop it afterwards."""
    port = port or free_port()
    server_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "GUNICORN_WORKERS": str(workers),
        **(env or {}),
    }
    command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py"]
    command += ["--bind", f"127.0.0.1:{port}", "aicost.wsgi"]
    output = log or subprocess.DEVNULL
    server = subprocess.Popen(command, cwd=ROOT, env=server_env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        healthz_wait(lambda: url, server, seconds=30, name="gunicorn")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
