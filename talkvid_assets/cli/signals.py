"""Ctrl-C and SIGTERM during `talkvid curate`: remembered for the whole command, so the
launcher stops between runs, and put back as they were when the command ends."""

from __future__ import annotations

import os
import signal
import sys
from types import TracebackType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalLatch:
    """Remembers a SIGINT or SIGTERM while it is entered (``with SignalLatch() as stop``).

    During a run Dagster swaps in its own handlers, and an interrupt it raises inside a garbage
    collector callback is printed and dropped: the run then finishes as if nothing happened.
    The wakeup file descriptor is written by the interpreter for every signal, whichever Python
    handler is installed, so reading it tells the launcher the user asked to stop. Leaving the
    block restores the handlers, the wakeup descriptor and the unraisable hook it found, so an
    in-process caller (a test, a notebook) keeps its own.
    """

    def __init__(self) -> None:
        self._seen = False
        self._read = self._write = -1
        self._previous_fd = -1
        self._previous_handlers: dict[int, Any] = {}
        self._previous_hook = sys.unraisablehook
        self._interrupts: tuple[type[BaseException], ...] = (KeyboardInterrupt,)

    def __enter__(self) -> SignalLatch:
        from dagster import DagsterExecutionInterruptedError  # imported here, not in the hook

        self._interrupts = (KeyboardInterrupt, DagsterExecutionInterruptedError)
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous_handlers = {sig: signal.signal(sig, self._interrupt) for sig in SIGNALS}
        self._previous_hook = sys.unraisablehook
        sys.unraisablehook = self._drop_interrupts
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        sys.unraisablehook = self._previous_hook
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)

    def _interrupt(self, _signum: int, _frame: object) -> None:
        self._seen = True
        raise KeyboardInterrupt

    def _drop_interrupts(self, unraisable: sys.UnraisableHookArgs) -> None:
        """An interrupt raised where Python cannot propagate it (a garbage collector callback)
        is not printed as a traceback: the latch has recorded the signal already."""
        if not isinstance(unraisable.exc_value, self._interrupts):
            self._previous_hook(unraisable)

    def is_set(self) -> bool:
        """Whether a SIGINT or SIGTERM arrived since the block was entered."""
        try:
            received = os.read(self._read, 512)
        except BlockingIOError:
            received = b""
        self._seen = self._seen or bool(set(SIGNALS) & set(received))
        return self._seen
