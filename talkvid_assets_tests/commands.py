"""The `talkvid` command as the tests run it, in one place.

In its own process (``talkvid``, ``start_talkvid``) where the process boundary is the point:
signals, exit statuses, peak memory, the console script itself, a command racing another.
Everywhere else in this process (``talkvid_in_process``): each start-up of the console script
costs up to 2 CPU seconds of imports (Dagster's for most commands), several times that in wall
time on a loaded machine, and the suite used to pay it some fifty times.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from talkvid_assets.cli import main

TALKVID = str(Path(sys.executable).parent / "talkvid")


def cli_env(**settings: str) -> dict[str, str]:
    """This process's environment for a command, plus ``settings``; without TALKVID_HOME and
    DAGSTER_HOME, so that only the ``--home`` each call names decides where it works."""
    env = dict(os.environ)
    env.pop("TALKVID_HOME", None)
    env.pop("DAGSTER_HOME", None)
    return env | settings


def as_from_a_terminal() -> None:
    """In a child before it runs: SIGINT and SIGTERM as a terminal gives a command, whatever
    this process inherited (pytest started from a script's ``cmd &`` has SIGINT ignored, and a
    child would inherit that: Ctrl-C, and the tests that send it, would do nothing)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def start_talkvid(
    home: Path, *args: str, env: dict[str, str] | None = None, **popen
) -> subprocess.Popen:
    """`talkvid --home HOME ARGS...` started in its own process (text mode), its signals as
    from a terminal; ``popen`` as for ``subprocess.Popen`` (where its output goes,
    ``start_new_session``)."""
    command = [TALKVID, "--home", str(home), *args]
    popen.setdefault("preexec_fn", as_from_a_terminal)
    return subprocess.Popen(command, env=env or cli_env(), text=True, **popen)


def talkvid(
    home: Path,
    *args: str,
    check: bool = True,
    timeout: float = 600,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`talkvid --home HOME ARGS...` as a user runs it, in its own process, to its end; with
    ``check`` its exit status must be 0 (the failure shows what it printed)."""
    result = subprocess.run(
        [TALKVID, "--home", str(home), *args],
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check:
        assert result.returncode == 0, f"talkvid {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def talkvid_in_process(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The same command through ``talkvid_assets.cli.main`` in this process: the exit status
    (argparse's included) and what it printed, shaped as ``talkvid`` returns them."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["--home", str(home), *args]
    with process_state_kept(), redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse refusing the arguments
            code = stop.code if isinstance(stop.code, int) else 1
    result = subprocess.CompletedProcess([TALKVID, *argv], code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, f"talkvid {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


@contextmanager
def process_state_kept() -> Iterator[None]:
    """What a command sets for its whole process, put back afterwards (the environment's homes,
    its SIGINT/SIGTERM handlers, the signal wakeup descriptor, the unraisable hook), so that a
    command run in the test process leaves nothing behind for the next test."""
    environ = dict(os.environ)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    hook = sys.unraisablehook
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environ)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(wakeup)
        sys.unraisablehook = hook


def wait_for_step(home: Path, process: subprocess.Popen, step: str, timeout: float = 300) -> None:
    """Return once a run in ``home``'s instance has started ``step`` while the command
    ``process`` still runs: a signal sent then lands inside that step, however long the start-up
    took on a loaded machine (a fixed sleep sent it before any run there, or during the run's
    own bookkeeping, where Dagster holds an interrupt back and the run completes)."""
    deadline = time.monotonic() + timeout
    running = RunsFilter(statuses=[DagsterRunStatus.STARTED])
    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        while not any(
            entry.step_key == step
            for run in instance.get_runs(running)
            for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
        ):
            assert process.poll() is None, f"the command ended before a run started {step}"
            assert time.monotonic() < deadline, f"no run started {step} in {timeout} s"
            time.sleep(0.1)
