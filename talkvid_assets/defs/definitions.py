"""The one Definitions object that `dagster dev` and `dagster asset materialize` load: the
graph of the home at ``$TALKVID_HOME`` (default ./data), configured by its curation.yaml."""

from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.resources import home_from_env

defs = build_definitions(home_from_env())
