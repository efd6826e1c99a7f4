"""Shared fixtures: real sample media, real stores in temporary homes, real Dagster instances,
and homes curated once per test run."""

from __future__ import annotations

import fcntl
import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest
import yaml
from dagster import DagsterInstance, instance_for_test

from talkvid_assets.core.config import config_path, default_text
from talkvid_assets.core.decode_pass import DecodePassResult, decode_pass
from talkvid_assets.core.scoring import ScorerBackend, load_backend
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.stages import STAGES
from talkvid_assets.core.store import Store
from talkvid_assets.core.sync.network import save_syncnet
from talkvid_assets.core.sync.scorer import MODEL_NAME as SYNCNET_MODEL
from talkvid_assets.core.sync.scorer import WEIGHT_FILE as SYNCNET_WEIGHTS
from talkvid_assets.core.video import probe
from talkvid_assets.launch import (
    INSTANCE_CONFIG,
    RunOutcome,
    curate,
    register_partitions,
    sigterm_kept,
)
from talkvid_assets_tests.http_server import range_server
from talkvid_assets_tests.media import SAMPLES
from talkvid_assets_tests.synthetic_sync import face_still, train_face_syncnet

SHARED = Path(__file__).resolve().parents[2] / "shared"
HEAD_DETAIL_CASES = SHARED / "fixtures" / "head_detail_cases.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a slow test first, each file's tests kept together and in order: pytest-xdist
    (``--dist loadfile --no-loadscope-reorder`` in `make test`) hands whole files to workers in
    this order, so the long files start at once and the quick ones fill the workers' ends
    rather than one long file running alone at the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    first = {path: index for index, path in enumerate(dict.fromkeys(i.path for i in items))}
    items.sort(key=lambda item: (item.path not in slow, first[item.path]))


@pytest.fixture(autouse=True)
def sigterm_as_found() -> Iterator[None]:
    """Each test leaves its worker's SIGTERM handler as it found it. Tests that run Dagster in
    process themselves (``materialize``, ``execute_in_process``) get Dagster's mapping of
    SIGTERM onto SIGINT's handler, which is "ignore" when the suite was started as a
    background job: every pool and server a later test starts would then ignore SIGTERM, and a
    pool's ``terminate`` would wait for ever (the product's own runs restore it, see
    ``launch.sigterm_kept``)."""
    with sigterm_kept():
        yield


@pytest.fixture(scope="session")
def head_detail_cases() -> list[dict]:
    if not HEAD_DETAIL_CASES.exists():
        pytest.fail(f"shared fixtures missing: {HEAD_DETAIL_CASES} (CI runs beside ../shared)")
    return json.loads(HEAD_DETAIL_CASES.read_text())


@pytest.fixture(scope="session")
def backends() -> dict[str, ScorerBackend]:
    return {stage.name: load_backend(stage.name, stage.default_backend) for stage in STAGES}


@pytest.fixture(scope="session")
def analyses(tmp_path_factory, backends) -> dict[str, DecodePassResult]:
    """One real decode pass per bundled sample video, shared by the core tests (made once per
    test run, see :func:`once`)."""
    names = ("Megamind.avi", "talk_demo.mp4", "bikes.mp4", "carphone_pristine.mp4",
             "carphone_distorted.mp4")  # fmt: skip
    paths = [SAMPLES / name for name in names]

    def analyse(_: Path) -> dict[str, DecodePassResult]:
        return {path.name: decode_pass(path, probe(path), backends) for path in paths}

    return once(tmp_path_factory, "analyses", analyse)


@pytest.fixture(scope="session")
def face_syncnet_models(tmp_path_factory) -> Path:
    """A models folder holding the tiny SyncNet trained on the talking still
    (:func:`~talkvid_assets_tests.synthetic_sync.train_face_syncnet`), trained :func:`once` per
    test run; tests copy it into a home's ``models``."""

    def train(folder: Path) -> Path:
        weights = folder / "models" / SYNCNET_MODEL / SYNCNET_WEIGHTS
        weights.parent.mkdir(parents=True)
        save_syncnet(train_face_syncnet(*face_still()), weights)
        return folder / "models"

    return once(tmp_path_factory, "face_syncnet", train)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    """A Range-honouring HTTP server on 127.0.0.1 for model fetches (``http_server.url``)."""
    with range_server() as httpd:
        yield httpd


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "home")


@contextmanager
def project_instance(directory: Path) -> Iterator[DagsterInstance]:
    """A test instance in ``directory`` with the project's dagster.yaml settings."""
    directory.mkdir(parents=True, exist_ok=True)
    overrides = yaml.safe_load(INSTANCE_CONFIG.read_text())
    with instance_for_test(temp_dir=str(directory), overrides=overrides) as instance:
        yield instance


@pytest.fixture
def dagster_instance(tmp_path) -> Iterator[DagsterInstance]:
    with project_instance(tmp_path / "dagster") as instance:
        yield instance


def ingest_and_curate(
    instance: DagsterInstance, store: Store, paths: list[Path], profile: str = "demo"
) -> tuple[dict[Path, str], list[RunOutcome]]:
    """What `talkvid ingest` + `talkvid curate` do, on a test instance."""
    keys = {path: register_source(store, path)[0] for path in paths}
    register_partitions(instance, keys.values())
    configure(store.home, profile)
    return keys, curate(instance, store.home, sorted(set(keys.values())))


def configure(home: Path, profile: str = "demo", **settings: str) -> Path:
    """Write the home's curation.yaml: the documented defaults with ``profile``, plus any
    top-level ``settings`` given as YAML text (e.g. thresholds="{quality_score: 9.5}"), each
    replacing the template's setting (its block, for a mapping such as ``backends``)."""
    home.mkdir(parents=True, exist_ok=True)
    text = default_text(profile)
    for key, value in settings.items():
        kept, inside = [], False
        for line in text.splitlines():  # drop the key's line and its indented block
            inside = line.startswith(f"{key}:") or (inside and line.startswith(" "))
            if not inside:
                kept.append(line)
        text = "\n".join([*kept, f"{key}: {value}"]) + "\n"
    config_path(home).write_text(text)
    return config_path(home)


@dataclass(frozen=True)
class CuratedHome:
    """A home curated once per test run, as `talkvid ingest` + `talkvid curate` leave it (its
    Dagster instance in ``home/dagster``, where the CLI keeps it). Tests that only read it share
    it; a test that changes it works on a ``copy``."""

    home: Path
    keys: dict[Path, str]  # source path -> partition key
    outcomes: list[RunOutcome]

    @property
    def store(self) -> Store:
        return Store(self.home)

    def instance(self) -> AbstractContextManager[DagsterInstance]:
        return project_instance(self.home / "dagster")

    def copy(self, to: Path) -> CuratedHome:
        """A private copy at ``to``. Everything a home refers to inside itself is found relative
        to it (the Dagster instance's SQLite files by its folder; the views in talkvid.duckdb
        name the tables' folder, and their marker names it too, so the copy's first publish
        re-creates them); outside, only the read-only samples are named."""
        shutil.copytree(self.home, to, symlinks=True)
        return replace(self, home=to.resolve())


def curated_home(root: Path, names: list[str]) -> CuratedHome:
    """The bundled samples ``names`` ingested and curated with the demo profile in ``root``."""
    store = Store(root / "home")
    with project_instance(store.home / "dagster") as instance:
        keys, outcomes = ingest_and_curate(instance, store, [SAMPLES / name for name in names])
    assert all(outcome.success for outcome in outcomes), [outcome.error for outcome in outcomes]
    return CuratedHome(store.home, keys, outcomes)


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold ``lock`` (an flock on a file) against every other process of this test run."""
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


T = TypeVar("T")


def once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """``build(folder)`` made once per test run, not once per pytest-xdist worker: the first
    worker to ask builds it in a folder the workers share (the parent of each worker's base
    temp), under a file lock the others wait on, and keeps it pickled; every worker then reads
    that pickle."""
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"{name}.once"
    record = shared / "built.pickle"
    shared.mkdir(parents=True, exist_ok=True)
    with exclusive(shared.with_suffix(".lock")):
        if not record.exists():
            record.write_bytes(pickle.dumps(build(shared)))
        return pickle.loads(record.read_bytes())


def curated_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, names: list[str]
) -> CuratedHome:
    """``curated_home(names)`` built :func:`once` per test run; every worker works on its own
    copy, so a test sees exactly what it saw when each worker curated its own."""
    built = once(tmp_path_factory, name, lambda shared: curated_home(shared, names))
    return built.copy(tmp_path_factory.mktemp(name) / "home")


@pytest.fixture(scope="session")
def curated_talk(tmp_path_factory) -> CuratedHome:
    """talk_demo.mp4 alone (its one clip passes)."""
    return curated_once(tmp_path_factory, "curated_talk", ["talk_demo.mp4"])


@pytest.fixture(scope="session")
def curated_talk_megamind(tmp_path_factory) -> CuratedHome:
    """talk_demo.mp4 (one passing clip) and Megamind.avi (four clips, each too short)."""
    return curated_once(
        tmp_path_factory, "curated_talk_megamind", ["talk_demo.mp4", "Megamind.avi"]
    )


@pytest.fixture(scope="session")
def curated_talk_carphone(tmp_path_factory) -> CuratedHome:
    """talk_demo.mp4 (one passing clip) and carphone_pristine.mp4 (one clip that fails)."""
    return curated_once(
        tmp_path_factory, "curated_talk_carphone", ["talk_demo.mp4", "carphone_pristine.mp4"]
    )


@pytest.fixture(scope="session")
def curated_talk_megamind_bikes(tmp_path_factory) -> CuratedHome:
    """talk_demo.mp4, Megamind.avi and bikes.mp4 (a busy street, no passing clip), curated in
    one ranged run."""
    return curated_once(
        tmp_path_factory,
        "curated_talk_megamind_bikes",
        ["talk_demo.mp4", "Megamind.avi", "bikes.mp4"],
    )
