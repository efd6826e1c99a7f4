"""Several videos decoded at once give exactly the tables of one at a time, and every pass
records where its CPU time went."""

import pytest

from talkvid_assets.core.decode_runs import record_decode_passes
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.stages import CPU_PARTS
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import DEMO
from talkvid_assets.core.verdicts import prefilter_video
from talkvid_assets_tests.media import SAMPLES

NAMES = ["Megamind.avi", "talk_demo.mp4", "bikes.mp4"]


def curated_tables(home, backends, workers):
    store = Store(home)
    keys = [register_source(store, SAMPLES / name)[0] for name in NAMES]
    for key in keys:
        prefilter_video(store, key, DEMO)
    tables = record_decode_passes(store, keys, backends, workers=workers)
    return store, keys, tables


def test_videos_decoded_in_parallel_give_the_tables_of_one_at_a_time(tmp_path, backends):
    _, _, alone = curated_tables(tmp_path / "alone", backends, workers=1)
    store, keys, together = curated_tables(tmp_path / "together", backends, workers=3)
    assert together.keys() == alone.keys()
    for table, rows in alone.items():
        assert together[table] == rows, table
    reports = {row["video_id"]: row for row in store.query("SELECT * FROM decode_reports")}
    assert sorted(reports) == sorted(keys)
    for report in reports.values():
        spent = {part: report[f"{part}_cpu_s"] for part in CPU_PARTS}
        assert spent["decode"] > 0.05 and spent["head_detail"] > 0, spent
        assert all(seconds is None or seconds >= 0 for seconds in spent.values()), spent
    silent = reports[keys[NAMES.index("bikes.mp4")]]  # no audio track: no voice detection
    assert silent["voice_cpu_s"] is None


class Breaks:
    """A clip scorer (a plug-in of the ClipScorer protocol) that fails on its first frame."""

    def offer(self, frame, clip_index, clip_time):
        raise RuntimeError("scorer broke")


class Watches:
    """A clip scorer that looks at every frame and scores nothing."""

    def offer(self, frame, clip_index, clip_time):
        pass

    def finish(self, duration, frame_count):
        return {}


@pytest.mark.parametrize("failing_first", [True, False])
def test_a_failing_pass_stops_the_other_videos_passes_of_its_run(tmp_path, failing_first):
    """One video's error ends the run at once, whichever place it has in the run: the other
    videos stop at their next frame instead of decoding to the end, and nothing half-done is
    recorded for them."""
    store = Store(tmp_path / "home")
    small, large = (register_source(store, SAMPLES / n)[0] for n in ("talk_demo.mp4", "bikes.mp4"))
    for key in (small, large):
        prefilter_video(store, key, DEMO)
    order = [small, large] if failing_first else [large, small]

    class Scorer:
        """Breaks on the small video (talk_demo, 176 px wide) and watches bikes (640 px)."""

        name, version = "breaks-on-small", "1"

        def new_clip(self, video):
            return Breaks() if video.width < 200 else Watches()

    with pytest.raises(RuntimeError, match="scorer broke"):
        record_decode_passes(store, order, {"quality": Scorer()}, workers=2)
    assert store.rows("decode_reports", large) == []
