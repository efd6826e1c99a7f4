"""The one Definitions object that `dagster dev` and `dagster asset materialize` load: the
graph of the home at ``$TALKVID_HOME`` (default ./data), configured by its curation.yaml.

Built when Dagster loads the code location, not when this module is imported: building reads
the home's curation.yaml (creating a new home's), and an import must not write.
"""

from dagster import Definitions, definitions

from talkvid_assets.core.home import home_from_env
from talkvid_assets.defs.build import build_definitions


@definitions
def defs() -> Definitions:
    return build_definitions(home_from_env())
