"""Process-wide state (the environment, signal handlers, the unraisable hook, thread pools) is
left as found by what runs in-process: `talkvid` called as a function (tests, notebooks), the
process that `talkvid dev` ties to `dagster dev`, the face detection pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from talkvid_assets.cli import main
from talkvid_assets.dev_process import run_tied
from talkvid_assets.launch import ingest_url_lists
from talkvid_assets_tests.conftest import configure, project_instance


def process_state() -> dict[str, object]:
    wakeup_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup_fd)
    return {
        "environ": dict(os.environ),
        "SIGINT": signal.getsignal(signal.SIGINT),
        "SIGTERM": signal.getsignal(signal.SIGTERM),
        "unraisablehook": sys.unraisablehook,
        "wakeup_fd": wakeup_fd,
    }


def test_an_in_process_curate_leaves_the_environment_and_handlers_as_found(tmp_path, capsys):
    before = process_state()
    assert main(["--home", str(tmp_path / "home"), "curate"]) == 0
    assert "nothing ingested yet" in capsys.readouterr().out
    assert process_state() == before


def test_a_run_in_a_background_job_leaves_sigterm_as_found(tmp_path):
    """A script's ``cmd &`` starts Python with SIGINT ignored, and Dagster maps SIGTERM onto
    SIGINT's handler when a run ends: SIGTERM must stay as found, or nothing stops the process
    (a multiprocessing pool's terminate hangs) nor the children it starts afterwards."""
    home = tmp_path / "home"
    configure(home)
    found = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with project_instance(tmp_path / "dagster") as instance:
            assert ingest_url_lists(instance, home).success  # one in-process run
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for signum, handler in found.items():
            signal.signal(signum, handler)


def test_run_tied_puts_back_the_handlers_it_installed():
    before = process_state()
    assert run_tied(["/bin/sh", "-c", "exit 3"]) == 3
    assert process_state() == before


def test_face_detection_uses_the_cores_the_process_may_run_on():
    """A container (or taskset) limits the process's affinity, not os.cpu_count()."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from talkvid_assets.core.faces import _detection_workers; "
        "print(_detection_workers()._max_workers)"
    )
    workers = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert workers.stdout.strip() == "1"
