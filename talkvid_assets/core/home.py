"""Which talkvid home a process works on: ``$TALKVID_HOME``, else ``./data``.

Declared once for every entry point: the CLI (``--home`` overrides it) and the Definitions that
`dagster dev`, a code server or `dagster asset materialize` load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

HOME_ENV = "TALKVID_HOME"
DEFAULT_HOME = "data"


def home_from_env(environ: Mapping[str, str] = os.environ) -> Path:
    """``$TALKVID_HOME``, or ``./data``: where metadata, exports and the Dagster instance live."""
    return Path(environ.get(HOME_ENV) or DEFAULT_HOME).resolve()
