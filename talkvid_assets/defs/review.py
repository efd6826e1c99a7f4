"""How the automatic checks agree with people: precision and recall per check against the
verdicts imported with `talkvid review import` (core.review). On demand: materialize it after an
import; a curation run never does."""

from dagster import MaterializeResult, asset

from talkvid_assets.core.review import calibration
from talkvid_assets.defs.metadata import table
from talkvid_assets.defs.names import FILTERED_CLIPS, ON_DEMAND_TAG, REVIEW_GROUP
from talkvid_assets.defs.resources import TalkvidResource

REPORT_COLUMNS = ["check", "labels", "precision", "recall"]


@asset(
    group_name=REVIEW_GROUP,
    deps=[FILTERED_CLIPS],
    kinds={"duckdb"},
    tags={ON_DEMAND_TAG: "true"},
)
def review_calibration(talkvid: TalkvidResource) -> MaterializeResult:
    """Each check's precision and recall against people's verdicts (a pass is a positive)."""
    report = calibration(talkvid.store())
    return MaterializeResult(
        metadata={
            "checks": len(report),
            "labels": sum(row["labels"] for row in report),
            "calibration": table(report, REPORT_COLUMNS),
        }
    )
