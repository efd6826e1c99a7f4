"""``python -m talkvid_assets.cli``: the `talkvid` command without its console script."""

import sys

from talkvid_assets.cli import main

sys.exit(main())
