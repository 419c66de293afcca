"""A throwaway PostgreSQL 15 server for tests and benchmarks.

    python -m tests.throwaway_pg run -- COMMAND [ARGS...]

starts a server in a temporary directory on a free loopback port, runs COMMAND with
DATABASE_URL pointing at it, then stops the server and removes the directory. As root the
server runs as the `postgres` system user (initdb and postgres refuse to run as root).
Tests that need to restart the server (fault tests) find it through AICOST_PG_* variables.
`start_standby(primary)` adds a physical streaming replica of it (pg_basebackup -R) on another
loopback port, for the replica tests; the primary is started ready for it (wal_level=replica,
WAL senders, and initdb's default pg_hba already allows replication from 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin"
SERVER_USER = "postgres"
DATABASE = "aicost"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return argv


@dataclass
class ThrowawayPostgres:
    bindir: Path
    root: Path
    port: int
    durable: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgres://{SERVER_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *argv: str) -> None:
        subprocess.run(_as_server_user([str(self.bindir / argv[0]), *argv[1:]]), check=True, stdout=subprocess.DEVNULL)

    def _server_options(self) -> str:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-k {self.root}",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
            # Replication: a standby can be cloned and streamed from any throwaway server.
            "-c wal_level=replica",
            "-c max_wal_senders=10",
            "-c wal_keep_size=256MB",
            "-c hot_standby=on",
            # A standby reports lag quickly; a primary ignores these.
            "-c wal_receiver_status_interval=1s",
        ]
        if not self.durable:
            # A throwaway server: crash safety buys nothing here and costs test time.
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return " ".join(options)

    def initialise(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", SERVER_USER, "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        log = self.root / "server.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(log), "-o", self._server_options(), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def promote(self) -> None:
        """Make this standby a primary (pg_ctl promote, waiting until it accepts writes)."""
        self._run("pg_ctl", "-D", str(self.datadir), "-w", "promote")

    def create_database(self) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SERVER_USER, DATABASE)

    def environment(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.url,
            "AICOST_PG_BINDIR": str(self.bindir),
            "AICOST_PG_DATADIR": str(self.datadir),
            "AICOST_PG_ROOT": str(self.root),
            "AICOST_PG_PORT": str(self.port),
            "AICOST_PG_DURABLE": "1" if self.durable else "",
        }

    @classmethod
    def from_environment(cls) -> ThrowawayPostgres | None:
        """The server this process runs under, if it was started by this module."""
        if "AICOST_PG_ROOT" not in os.environ:
            return None
        return cls(
            bindir=Path(os.environ["AICOST_PG_BINDIR"]),
            root=Path(os.environ["AICOST_PG_ROOT"]),
            port=int(os.environ["AICOST_PG_PORT"]),
            durable=bool(os.environ.get("AICOST_PG_DURABLE")),  # A restart keeps the server's settings.
        )


def start_throwaway(*, durable: bool = False) -> ThrowawayPostgres:
    bindir = Path(os.environ.get("PG_BINDIR", DEFAULT_BINDIR))
    if not (bindir / "postgres").exists():
        sys.exit(f"PostgreSQL server binaries not found in {bindir} (set PG_BINDIR).")
    root = Path(tempfile.mkdtemp(prefix="aicost-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = ThrowawayPostgres(bindir=bindir, root=root, port=_free_port(), durable=durable)
    try:
        server.initialise()
        server.start()
        server.create_database()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


def start_standby(primary: ThrowawayPostgres) -> ThrowawayPostgres:
    """A streaming replica of `primary` in its own temporary directory and on its own loopback port:
    pg_basebackup -R (which writes standby.signal and primary_conninfo), then started like the primary."""
    root = Path(tempfile.mkdtemp(prefix="aicost-pg-standby-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    standby = ThrowawayPostgres(bindir=primary.bindir, root=root, port=_free_port(), durable=primary.durable)
    try:
        standby._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", SERVER_USER),
            *("-D", str(standby.datadir), "-R", "-X", "stream", "-c", "fast"),
        )
        standby.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return standby


def remove_throwaway(server: ThrowawayPostgres) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):  # Already down after a fault test.
        server.stop(mode="immediate")
    shutil.rmtree(server.root, ignore_errors=True)


def rerun_without_database(module: str, *, durable: bool) -> int | None:
    """For benchmarks: without DATABASE_URL, run `python -m module` with this process's arguments
    on a throwaway server and return its exit status; with DATABASE_URL set, None (measure here)."""
    if os.environ.get("DATABASE_URL"):
        return None
    return run([sys.executable, "-m", module, *sys.argv[1:]], durable=durable)


def run(command: list[str], *, durable: bool) -> int:
    server = start_throwaway(durable=durable)
    print(f"throwaway PostgreSQL on 127.0.0.1:{server.port} in {server.root}", flush=True)
    child = None

    def forward(signum, _frame):
        if child is not None:
            child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    try:
        child = subprocess.Popen(command, env={**os.environ, **server.environment()})
        return child.wait()
    finally:
        remove_throwaway(server)


def main(argv: list[str]) -> int:
    usage = "usage: python -m tests.throwaway_pg run [--durable] -- COMMAND [ARGS...]"
    if len(argv) < 3 or argv[0] != "run" or "--" not in argv:
        print(usage, file=sys.stderr)
        return 2
    split = argv.index("--")
    durable = "--durable" in argv[1:split]
    return run(argv[split + 1 :], durable=durable)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
