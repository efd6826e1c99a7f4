"""talkvid-assets: TalkVid-style talking-head dataset curation.

The public library API. The Dagster definitions live in :mod:`talkvid_assets.defs` and are not
imported here, so the core stays usable without Dagster.
"""

from talkvid_assets.core.bench import select_bench
from talkvid_assets.core.head_detail import head_detail_scores

__all__ = ["head_detail_scores", "select_bench"]
