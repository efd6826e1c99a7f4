"""`talkvid dev` and `make dev` stop with everything they started: after a kill -9 of
`talkvid dev`, and on SIGTERM when started from a script with SIGINT ignored."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from talkvid_assets_tests.commands import as_from_a_terminal
from talkvid_assets_tests.devserver import TALKVID, _env, free_port, sensors, wait_for

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (through /proc: children of children)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def start(command: list[str], log: Path, ignore_sigint: bool) -> tuple[subprocess.Popen, int]:
    """``command`` serving on a free port, as a script's background job would start it."""
    port = free_port()

    def as_background_job() -> None:
        as_from_a_terminal()  # whatever the test process inherited
        if ignore_sigint:  # what `cmd &` does in a non-interactive shell
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, str(port)] if command[0] == TALKVID else [*command, f"PORT={port}"],
            env=_env(),
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=as_background_job,
        )

    def serving() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return bool(sensors(port))
        except (OSError, KeyError, TypeError):
            return False

    wait_for("the dev server answering", serving, 180, log)
    return process, port


def stopped(started: set[int], log: Path) -> None:
    """Wait until every process in ``started`` is gone; kill what is left when they are not
    (a failing test leaves no orphans behind)."""
    try:
        wait_for("everything started to stop", lambda: not alive(started), 60, log)
    finally:
        for pid in alive(started):
            os.kill(pid, signal.SIGKILL)


def test_a_kill_9_of_talkvid_dev_leaves_nothing_running(tmp_path):
    dev, _ = start(
        [TALKVID, "--home", str(tmp_path / "home"), "dev", "--port"], tmp_path / "log", False
    )
    started = descendants(dev.pid)
    assert len(started) >= 3, started  # dagster dev, its webserver, its daemon (+ code servers)
    os.kill(dev.pid, signal.SIGKILL)
    dev.wait()
    stopped(started, tmp_path / "log")


def test_make_dev_from_a_script_stops_on_sigterm(tmp_path):
    # Set up already (-o: the install stamp is not remade), with this interpreter's tools.
    make = ["make", "-s", "-o", ".venv/.installed-stamp", "dev", f"BIN={BIN}"]
    make.append(f"TALKVID_HOME={tmp_path}")
    dev, _ = start(make, tmp_path / "log", ignore_sigint=True)
    started = descendants(dev.pid) | {dev.pid}
    os.kill(dev.pid, signal.SIGTERM)  # make passes SIGTERM on to its recipe's process
    stopped(started, tmp_path / "log")
