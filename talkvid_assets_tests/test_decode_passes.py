"""Several videos decoded at once give exactly the tables of one at a time, and every pass
records where its CPU time went."""

from talkvid_assets.core.pipeline import prefilter_video, record_decode_passes, register_source
from talkvid_assets.core.stages import CPU_PARTS
from talkvid_assets.core.store import Store
from talkvid_assets.core.thresholds import DEMO
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
