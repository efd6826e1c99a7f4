"""`talkvid sql`: read-only SQL over the home's DuckDB views, interruptible at any moment."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import Any

from talkvid_assets.cli.errors import UserError
from talkvid_assets.cli.rendering import cell


def sql(home: Path, args: argparse.Namespace) -> int:
    """Print the rows of a read-only query over the home's views, tab-separated with a header.

    Rows are printed as they are fetched; a reader that stops early (``| head -1``) ends the
    command quietly with exit 0, as ``head`` asked for no more.
    """
    import sqlalchemy as sa

    from talkvid_assets.core.store import Store

    store = Store(home)
    store.compact()  # nothing below 200 files per table; else one query reads a few files
    try:
        with store.engine().connect() as connection:
            result = _execute_interruptibly(connection, sa.text(args.query))
            print("\t".join(result.keys()))
            for row in result:
                print("\t".join(cell(value) for value in row))
            sys.stdout.flush()
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise UserError(f"SQL error: {first}") from None
    except BrokenPipeError:
        # stdout's reader is gone: nothing more to say, and nothing to flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _execute_interruptibly(connection: Any, statement: Any) -> Any:
    """Execute ``statement`` on a worker thread while this (main) thread waits, so Ctrl-C
    reaches Python at once and interrupts DuckDB (``DuckDBPyConnection.interrupt``): a query
    running in DuckDB's C++ on the main thread does not always see the signal."""
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["result"] = connection.execute(statement)
        except BaseException as exc:  # handed to the main thread below
            done["error"] = exc

    worker = threading.Thread(target=work, name="talkvid-sql", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        connection.connection.driver_connection.interrupt()
        worker.join(5)
        # The one line, then out at once: closing an interrupted DuckDB connection (SQLAlchemy's
        # pool, DuckDB's own threads at interpreter exit) can log a traceback or abort.
        print("talkvid sql: query interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    if "error" in done:
        raise done["error"]
    return done["result"]
