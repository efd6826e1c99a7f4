"""`talkvid dev` keeps `dagster dev` (webserver, daemon, code servers) tied to its own life.

`dagster dev` started by exec outlived a ``kill -9`` of its parent with all its children, and
started in the background by a script (``nohup talkvid dev &``, ``make dev &``) it ignored
SIGTERM: such a job inherits SIGINT ignored, and Dagster maps SIGTERM onto SIGINT's handler.
So `talkvid dev` stays the parent:

- `dagster dev` runs in a session of its own through a small trampoline that asks Linux to send
  it SIGTERM when `talkvid dev` dies, however it dies (``PR_SET_PDEATHSIG``), and restores
  SIGINT's default before the exec, so Dagster's own shutdown (which stops the webserver, the
  daemon and their code servers) runs on SIGTERM.
- `talkvid dev` passes SIGTERM on, and SIGINT unless it was started with SIGINT ignored (a
  background job of a script: Ctrl-C in that script's terminal is not meant for it).
- When `dagster dev` ends, however it ends (``kill -9`` included), whatever is left of its
  process group is stopped: SIGTERM, then SIGKILL after ``LEFTOVER_GRACE_S``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

LEFTOVER_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h

# Runs in the child before the exec: no import beyond the standard library, nothing slow.
_TRAMPOLINE = f"""
import ctypes, os, signal, sys
parent = int(sys.argv[1])
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, signal.SIGTERM)
if os.getppid() != parent:
    sys.exit(1)  # the parent died before the death signal was armed
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[2], sys.argv[2:])
"""


def run_tied(argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
    """Run ``argv`` (`dagster dev ...`) as described above, with ``env`` (by default this
    process's); returns its exit status (128 + the signal that ended it, as a shell reports it).
    The signal handlers it installs to pass signals on are put back when the child ends."""
    inherited_sigint = signal.getsignal(signal.SIGINT)
    inherited_sigterm = signal.getsignal(signal.SIGTERM)
    child = subprocess.Popen(
        [sys.executable, "-c", _TRAMPOLINE, str(os.getpid()), *argv],
        start_new_session=True,
        env=env,
    )

    def pass_on(_signum: int, _frame: object) -> None:
        # Dagster treats SIGTERM as its interrupt once SIGINT has its default handler.
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, pass_on)
    if inherited_sigint is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, pass_on)
    try:
        status = child.wait()
    finally:
        _stop_group(child.pid)
        for signum, handler in (
            (signal.SIGTERM, inherited_sigterm),
            (signal.SIGINT, inherited_sigint),
        ):
            if handler is not None:  # None: installed outside Python, left alone
                signal.signal(signum, handler)
    return 128 - status if status < 0 else status


def _stop_group(group: int) -> None:
    """Stop what is left of ``group`` (children of a `dagster dev` that did not stop them)."""
    for sig, wait_s in ((signal.SIGTERM, LEFTOVER_GRACE_S), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except (ProcessLookupError, PermissionError):
                return
            time.sleep(0.2)
