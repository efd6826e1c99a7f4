"""The `talkvid` command: ingest sources, curate them through Dagster, export, demo.

Curation always goes through the Dagster instance of the home (runs, materializations and
partitions are visible in `dagster dev` afterwards); this package never re-implements a stage
and writes no data of its own: core and Dagster runs do. Heavy libraries (torch, OpenCV,
Dagster) are imported inside the commands that need them, so `talkvid sql`, `export` and
`--help` start in a fraction of a second. A user's mistake ends in one line on stderr and a
non-zero exit, never a traceback.

``parser`` declares the command line, ``curation``, ``outputs``, ``home`` and ``sql`` carry the
commands out, ``rendering`` formats what they print, ``signals`` holds Ctrl-C for curation.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence

from talkvid_assets.cli.errors import UserError
from talkvid_assets.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `talkvid` command line ``argv`` (default: the process's); returns the exit
    status. Usable in-process: it leaves the environment and signal handlers as it found them."""
    args = build_parser().parse_args(argv)  # --help and a usage error exit here, at once
    from sqlalchemy.exc import OperationalError

    from talkvid_assets.core.config import ConfigError
    from talkvid_assets.core.evaluate import EvaluationError
    from talkvid_assets.core.home import home_from_env
    from talkvid_assets.core.manifest import ManifestError
    from talkvid_assets.core.models import FetchError
    from talkvid_assets.core.review import ReviewError
    from talkvid_assets.core.stages import BackendUnavailable

    # Mistakes in what the user gave (settings, files, names): one line each, never a traceback.
    user_errors = (
        UserError,
        ConfigError,
        BackendUnavailable,
        FetchError,
        ManifestError,
        ReviewError,
        EvaluationError,
    )
    home = (args.home or home_from_env()).resolve()
    command = f"talkvid {args.command}"
    try:
        return args.run(home, args)
    except user_errors as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only or full home, an unreadable file
        where = exc.filename or home
        print(f"{command}: cannot use {where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except (OperationalError, sqlite3.OperationalError) as exc:  # the Dagster instance's database
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"{command}: the instance under {home} failed: {first}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # launch.Interrupted says which run it stopped
        print(f"{command}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130
