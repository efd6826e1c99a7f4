"""What scoring the re-encoded clip instead of the source does to a quality score.

Run with ``python benchmarks/reencoded_quality.py``. The reference scores each clip's x264 file
(preset medium, CRF 23); the decode pass scores frames of the source. For every bundled sample,
each clip is scored both ways by the embedded ``frame-stats`` scorer (DOVER's weights cannot be
fetched here, so its own shift stays unmeasured) and the table lists both and the difference.
"""

from __future__ import annotations

import statistics

from talkvid_assets.core.decode_pass import decode_pass
from talkvid_assets.core.reencoded import score_reencoded
from talkvid_assets.core.scoring import load_backend
from talkvid_assets.core.video import probe
from talkvid_assets_tests.media import SAMPLES

VIDEOS = (
    "talk_demo.mp4",
    "carphone_pristine.mp4",
    "carphone_distorted.mp4",
    "bikes.mp4",
    "Megamind.avi",
)


def main() -> None:
    backend = {"quality": load_backend("quality", "frame-stats")}
    print("| sample | clip | source | re-encoded clip | difference |")
    print("|---|---|---|---|---|")
    differences = []
    for name in VIDEOS:
        video = probe(SAMPLES / name)
        clips = decode_pass(SAMPLES / name, video, backend).clips
        spans = [
            {"start_time": clip.scene.clip_start_s, "end_time": clip.scene.clip_end_s}
            for clip in clips
        ]
        reencoded = score_reencoded(SAMPLES / name, video, spans, backend)
        for clip, scores in zip(clips, reencoded, strict=True):
            source = clip.scores["quality"]["quality_score"]
            again = scores["quality"]["quality_score"] if scores else None
            if source is None or again is None:
                continue
            differences.append(again - source)
            row = f"{source:.2f} | {again:.2f} | {again - source:+.2f}"
            print(f"| {name} | {clip.scene.index} | {row} |")
    print(
        f"\nMedian difference {statistics.median(differences):+.2f}, "
        f"range {min(differences):+.2f} to {max(differences):+.2f} over {len(differences)} clips."
    )


if __name__ == "__main__":
    main()
