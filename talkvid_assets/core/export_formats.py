"""TalkVid records in the formats datasets are shared in: Parquet, WebDataset and Hugging Face.

Every format holds the records exactly as :func:`talkvid_record` makes them (nested ``info``,
``head_detail.scores`` and ``talkvid_assets``), so a format is a container, never a different
schema. The Arrow schema is derived from ``talkvid_record`` and the store's column types, so the
columns keep their types even when every value of one is null (``description`` before captions
exist), and a record with a field the schema does not know is refused instead of losing it.

Layouts, for ``out`` as passed to :func:`write_export`:

- ``talkvid-json``: ``out`` is one JSON array (the release's own format).
- ``parquet``: ``out`` is one Parquet file.
- ``webdataset``: ``out/<split>/records-000000.tar``, ...; a sample is ``KEY.json`` (the record)
  and, when a clip file is given, ``KEY.mp4`` (and ``KEY.m4a`` in the split clip layout).
- ``hf``: ``out/data/<split>-00000-of-00001.parquet`` and ``out/README.md``, a dataset card
  whose front matter maps every split present to its files, so ``datasets.load_dataset(out)``
  reads it. ``all`` is a reserved split name there, so that split is called ``full``.

A split is replaced as a whole; other splits already under ``out`` are kept.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from talkvid_assets.core.clip_files import AUDIO_SUFFIX
from talkvid_assets.core.durable import follow_umask, write_atomic
from talkvid_assets.core.export import talkvid_record, write_records
from talkvid_assets.core.splits import FORMATS
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import TABLES
from talkvid_assets.core.thresholds import PROFILES

SHARD_RECORDS = 1000
# About 1 GB a shard: long sequential reads for streaming, and enough shards to spread over
# data-loader workers.
SHARD_BYTES = 1 << 30
CARD_FILE = "README.md"
HF_DATA_DIR = "data"
# `datasets` reserves "all" for the union of a dataset's splits.
HF_SPLIT_NAMES = {"all": "full"}
# A WebDataset sample is named by what precedes the first dot of a member's name, so a key
# must hold no dot and no slash; clip ids (`<video_id>-0003`) are letters, digits and dashes.
SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SPLIT_NAME = re.compile(r"[A-Za-z0-9_]+")
FIELD_NOTES = {
    "id": "clip id: the source video's id and the clip's number",
    "height": "source height in pixels, as displayed",
    "width": "source width in pixels, as displayed",
    "fps": "source frame rate",
    "start-time": "clip start in the source, seconds",
    "start-frame": "first frame of the clip's scene (before the 0.3 s trim)",
    "end-time": "clip end in the source, seconds",
    "end-frame": "end frame of the clip's scene (before the 0.1 s trim)",
    "durations": 'clip duration as text, one decimal and an "s"',
    "info": "speaker and video labels; null until annotated, except the video link",
    "description": "caption; null until annotated",
    **{stage.export_field: stage.export_note for stage in STAGES if stage.export_field},
    "talkvid_assets": "backends, stand-in scores, speaker, profile, config digest of a record",
}


@dataclass(frozen=True)
class CardInfo:
    """What the dataset card says about how the records were curated."""

    profile: str
    config_digest: str
    settings: Mapping[str, Any] = field(default_factory=dict)  # e.g. thresholds and backends


def record_schema() -> pa.Schema:
    """The Arrow schema of a TalkVid record, nested as the record is.

    It is what :func:`talkvid_record` makes of rows holding a typed value in every column of
    the store's tables, one row per backend (a score field is filled by some backends only), so
    the record's one definition also decides its column types.
    """
    row = {column.name: _example(column.type) for table in TABLES.values() for column in table}
    backends = [name for stage in STAGES for name in stage.backends]
    examples = [
        talkvid_record({**row, **{stage.backend_column: name for stage in STAGES}})
        for name in backends
    ]
    return pa.Table.from_pylist(examples).schema


def _example(kind: pa.DataType) -> Any:
    """A non-null value of an Arrow type, so inference sees the type rather than null."""
    if pa.types.is_list(kind):
        return [_example(kind.value_type)]
    if pa.types.is_floating(kind):
        return 0.5
    if pa.types.is_integer(kind):
        return 1
    if pa.types.is_boolean(kind):
        return True
    return "text"


def records_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The records as an Arrow table of :func:`record_schema`; a field the schema lacks, or a
    missing one, is an error rather than a silently dropped or nulled column."""
    schema = record_schema()
    for record in records:
        _check_fields(record, pa.struct(list(schema)), str(record.get("id")))
    return pa.Table.from_pylist(list(records), schema)


def _check_fields(value: Any, kind: pa.DataType, where: str) -> None:
    if not isinstance(kind, pa.StructType) or value is None:
        return
    if not isinstance(value, Mapping):
        raise ValueError(f"record {where}: expected an object, got {value!r}")
    names = [kind.field(i).name for i in range(kind.num_fields)]
    if set(value) != set(names):
        extra, missing = sorted(set(value) - set(names)), sorted(set(names) - set(value))
        raise ValueError(f"record {where}: unknown fields {extra}, missing fields {missing}")
    for name in names:
        _check_fields(value[name], kind.field(name).type, f"{where}.{name}")


def write_parquet(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    """One Parquet file, written atomically: a reader never sees half a file."""
    buffer = pa.BufferOutputStream()
    pq.write_table(records_table(records), buffer)
    write_atomic(path, buffer.getvalue().to_pybytes())


def write_webdataset(
    records: Sequence[Mapping[str, Any]],
    folder: Path,
    clip_files: Mapping[str, Path] | None = None,
    max_records: int = SHARD_RECORDS,
    max_bytes: int = SHARD_BYTES,
) -> list[Path]:
    """Tar shards of samples ``KEY.json`` (+ ``KEY.mp4``) in ``folder``, replacing its shards.

    A shard closes at ``max_records`` samples or before it passes ``max_bytes``. The shards are
    built beside ``folder`` and swapped in, so a reader never mixes old and new shards. Member
    metadata is fixed (owner, time, mode), so the same records give byte-identical shards.
    """
    clip_files = clip_files or {}
    keys = [_sample_key(record) for record in records]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate clip ids: samples of one key would merge")
    folder.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        follow_umask(built, directory=True)
        shards = _write_shards(records, keys, clip_files, built, max_records, max_bytes)
        _replace_folder(built, folder)
    except BaseException:
        shutil.rmtree(built, ignore_errors=True)
        raise
    return [folder / shard.name for shard in shards]


def _sample_key(record: Mapping[str, Any]) -> str:
    key = str(record["id"])
    if not SAFE_KEY.fullmatch(key):
        raise ValueError(f"clip id {key!r} is not a safe WebDataset key (letters, digits, -, _)")
    return key


def _write_shards(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    clip_files: Mapping[str, Path],
    folder: Path,
    max_records: int,
    max_bytes: int,
) -> list[Path]:
    with _Shards(folder, max_records, max_bytes) as shards:
        for key, record in zip(keys, records, strict=True):
            shards.add(_sample_members(key, record, clip_files.get(key)))
    return shards.paths


class _Shards:
    """Tar shards written one after another, each closed at a sample or byte limit."""

    def __init__(self, folder: Path, max_records: int, max_bytes: int) -> None:
        self.paths: list[Path] = []
        self._folder = folder
        self._max_records, self._max_bytes = max_records, max_bytes
        self._archive: tarfile.TarFile | None = None
        self._count = self._size = 0

    def __enter__(self) -> _Shards:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._archive is not None:
            self._archive.close()

    def add(self, members: Sequence[tuple[str, bytes | Path]]) -> None:
        """Add one sample's members, starting a new shard when this one is full."""
        size = sum(_member_size(content) for _, content in members)
        full = self._count >= self._max_records or self._size + size > self._max_bytes
        archive = self._archive
        if archive is None or (full and self._count):
            archive = self._start()
        for name, content in members:
            _add_member(archive, name, content)
        self._count, self._size = self._count + 1, self._size + size

    def _start(self) -> tarfile.TarFile:
        if self._archive is not None:
            self._archive.close()
        self.paths.append(self._folder / f"records-{len(self.paths):06d}.tar")
        self._archive = tarfile.TarFile(self.paths[-1], "w", format=tarfile.PAX_FORMAT)
        self._count = self._size = 0
        return self._archive


def _sample_members(
    key: str, record: Mapping[str, Any], clip: Path | None
) -> list[tuple[str, bytes | Path]]:
    """A sample's members: the record, then its clip (and the clip's separate audio)."""
    members: list[tuple[str, bytes | Path]] = [
        (f"{key}.json", json.dumps(record, ensure_ascii=False).encode())
    ]
    if clip is not None:
        if not clip.is_file():
            raise FileNotFoundError(f"clip file of {key} not found: {clip}")
        members.append((f"{key}.mp4", clip))
        audio = clip.with_suffix(AUDIO_SUFFIX)
        if audio.is_file():
            members.append((f"{key}{AUDIO_SUFFIX}", audio))
    return members


def _member_size(content: bytes | Path) -> int:
    return len(content) if isinstance(content, bytes) else content.stat().st_size


def _add_member(archive: tarfile.TarFile, name: str, content: bytes | Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = _member_size(content), 0o644, 0
    if isinstance(content, bytes):
        archive.addfile(info, io.BytesIO(content))
    else:
        with content.open("rb") as handle:
            archive.addfile(info, handle)


def _replace_folder(built: Path, folder: Path) -> None:
    """Move ``built`` onto ``folder``: two renames, so the old content is never half replaced."""
    if folder.exists():
        retired = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
        folder.rename(retired / folder.name)
        built.rename(folder)
        shutil.rmtree(retired)
    else:
        built.rename(folder)


def read_webdataset(folder: Path) -> list[dict[str, Any]]:
    """The records of the shards in ``folder``, in shard and sample order."""
    records = []
    for shard in sorted(folder.glob("records-*.tar")):
        with tarfile.open(shard) as archive:
            for member in archive:
                if member.name.endswith(".json"):
                    handle = archive.extractfile(member)
                    assert handle is not None  # a .json member is a regular file
                    records.append(json.loads(handle.read()))
    return records


def hf_split_name(split_name: str) -> str:
    """The split's name in a Hugging Face dataset (``all`` is reserved there)."""
    return HF_SPLIT_NAMES.get(split_name, split_name)


def write_hf(
    records: Sequence[Mapping[str, Any]],
    folder: Path,
    split_name: str,
    card_info: CardInfo | None = None,
) -> Path:
    """The split as ``data/<split>-00000-of-00001.parquet`` under ``folder``, and the dataset
    card rewritten to list every split now present. Returns the card's path."""
    split = hf_split_name(split_name)
    write_parquet(records, folder / HF_DATA_DIR / f"{split}-00000-of-00001.parquet")
    card = folder / CARD_FILE
    write_atomic(card, dataset_card(folder, card_info).encode())
    return card


def _hf_splits(folder: Path) -> dict[str, list[Path]]:
    splits: dict[str, list[Path]] = {}
    for path in sorted((folder / HF_DATA_DIR).glob("*-*-of-*.parquet")):
        splits.setdefault(path.name.split("-", 1)[0], []).append(path)
    return splits


def dataset_card(folder: Path, card_info: CardInfo | None = None) -> str:
    """A Hugging Face dataset card for the splits in ``folder``: front matter ``datasets``
    reads (configs and data files, licence) and a body saying what the fields are and how the
    clips were curated."""
    splits = _hf_splits(folder)
    provenance = [
        row["talkvid_assets"]
        for paths in splits.values()
        for path in paths
        for row in pq.read_table(path, columns=["talkvid_assets"]).to_pylist()
    ]
    counts = {
        split: sum(pq.read_metadata(p).num_rows for p in paths) for split, paths in splits.items()
    }
    sections = [
        "# TalkVid-style talking-head clips",
        "One record per curated clip, in the TalkVid release's format (the paper's dataset "
        'README, "Output record"). Clip files are not included: `info.Video Link`, '
        "`start-time` and `end-time` locate each clip in its source.",
        _table(
            ["split", "records"], [[f"`{split}`", str(count)] for split, count in counts.items()]
        ),
        "## Fields",
        _table(["field", "type", "meaning"], _field_rows()),
        "## How it was curated",
        _curation(provenance, card_info),
        "## Licence",
        "Placeholder, to be completed before publishing: these records describe clips of "
        "third-party videos, and each clip remains under its source video's licence and terms "
        "(see `info.Video Link`). Nothing here grants rights to the videos themselves.",
    ]
    body = "\n\n".join(sections)
    return f"---\n{_front_matter(splits)}---\n\n{body}\n"


def _front_matter(splits: Iterable[str]) -> str:
    """The card's YAML: each split's data files (what ``datasets`` reads) and the licence."""
    front = {
        "pretty_name": "TalkVid-style talking-head clips",
        "license": "other",
        "license_name": "source-video-licences",
        "tags": ["talking-head", "video", "talkvid"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": split, "path": f"{HF_DATA_DIR}/{split}-*.parquet"} for split in splits
                ],
            }
        ],
    }
    return yaml.safe_dump(front, sort_keys=False, allow_unicode=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines)


def _field_rows() -> list[list[str]]:
    return [
        [f"`{column.name}`", f"`{column.type}`", FIELD_NOTES.get(column.name, "")]
        for column in record_schema()
    ]


def _curation(provenance: Sequence[Mapping[str, Any]], card_info: CardInfo | None) -> str:
    """The pipeline's stages, the backends behind the scores, and the profile and
    configuration that judged the clips (from ``card_info``, else as the records name them)."""
    if card_info is not None:
        profiles, digests = [card_info.profile], [card_info.config_digest]
    else:
        profiles = sorted({str(p["profile"]) for p in provenance})
        digests = sorted({str(p["config_digest"]) for p in provenance})
    lines = [
        "Source videos are cut into clips at scene changes (the clip starts 0.3 s after a cut "
        "and ends 0.1 s before the next), and a clip is kept when it lasts more than 5 s, "
        "holds speech, and reaches the thresholds of every scoring stage:",
        "",
        *(
            f"- {stage.name}, {stage.description}: "
            + (
                "; ".join(
                    f"backend `{name}`, in `{stage.score_field(name)}`"
                    for name in sorted({str(p[stage.backend_column]) for p in provenance})
                )
                or "no records"
            )
            for stage in STAGES
        ),
        "",
        "What each backend's score is, and the field that carries it (a field named after a "
        "model holds that model's numbers only; a stand-in's go under `talkvid_assets`):",
        "",
        *(
            f"- `{name}` → `{stage.score_field(name)}`, {scale.low:g} to {scale.high:g}: "
            f"{scale.meaning}"
            for stage in STAGES
            for name, scale in stage.scales.items()
        ),
        "",
        f"- Profile: {', '.join(f'`{name}`' for name in profiles)}"
        + "".join(f" ({PROFILES[name].description})" for name in profiles if name in PROFILES),
        f"- Configuration digest: {', '.join(f'`{digest}`' for digest in digests)}",
    ]
    if card_info is not None and card_info.settings:
        settings = yaml.safe_dump(dict(card_info.settings), sort_keys=False, allow_unicode=True)
        lines += ["", "Settings:", "", "```yaml", settings.rstrip(), "```"]
    return "\n".join(lines)


def read_hf(folder: Path, split_name: str) -> list[dict[str, Any]]:
    """The records of one split of an ``hf`` export, read with pyarrow alone."""
    paths = _hf_splits(folder).get(hf_split_name(split_name), [])
    if not paths:
        raise FileNotFoundError(f"no split {split_name!r} in {folder / HF_DATA_DIR}")
    return [row for path in paths for row in pq.read_table(path).to_pylist()]


def write_export(
    format: str,
    records: Sequence[Mapping[str, Any]],
    out: Path,
    split_name: str,
    clip_files: Mapping[str, Path] | None = None,
    card_info: CardInfo | None = None,
) -> Path:
    """Write one split's records in ``format`` (see the module's layouts); returns the file or
    folder written. ``records`` are already the split's: ``split_name`` only names it."""
    if not SPLIT_NAME.fullmatch(split_name):
        raise ValueError(f"split name {split_name!r}: use letters, digits and underscores")
    out = Path(out)
    match format:
        case "talkvid-json":
            write_records(out, [dict(record) for record in records])
            return out
        case "parquet":
            write_parquet(records, out)
            return out
        case "webdataset":
            write_webdataset(records, out / split_name, clip_files)
            return out / split_name
        case "hf":
            write_hf(records, out, split_name, card_info)
            return out
    raise ValueError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")


def read_export(format: str, path: Path, split_name: str = "all") -> list[dict[str, Any]]:
    """The records an export holds, as written: ``path`` and ``split_name`` as given to
    :func:`write_export` (the split matters for the folder formats only)."""
    path = Path(path)
    match format:
        case "talkvid-json":
            return json.loads(path.read_text())
        case "parquet":
            return pq.read_table(path).to_pylist()
        case "webdataset":
            return read_webdataset(path / split_name)
        case "hf":
            return read_hf(path, split_name)
    raise ValueError(f"unknown export format {format!r}; known: {', '.join(FORMATS)}")
