"""The production instance, deploy/dagster-postgres.yaml, on a real PostgreSQL server: curation
on it keeps its runs, events, partitions and pool limits in Postgres, and writes exactly the
clips that the same curation writes on the local SQLite instance."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster import DagsterInstance, QueuedRunCoordinator

from talkvid_assets.core.config import load_config
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.names import GPU_POOL
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.launch import INSTANCE_CONFIG
from talkvid_assets_tests.conftest import ingest_and_curate
from talkvid_assets_tests.devserver import free_port
from talkvid_assets_tests.media import SAMPLES

POSTGRES_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "dagster-postgres.yaml"
# A short scored video and one whose clip passes every check, so a verdict and an export exist.
VIDEOS = ["carphone_pristine.mp4", "talk_demo.mp4"]
SUPERUSER, DATABASE = "talkvid", "talkvid"
# Every character that breaks a hand-written URL: the instance must quote them itself.
PASSWORD = "p@ss:w/rd%?#"
SERVER_USER = "postgres"  # Debian's package creates it; PostgreSQL refuses to run as root
MISSING = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's `postgresql` "
    "package (`apt-get install postgresql`, or .ci/system-deps as root)"
)


@dataclass(frozen=True)
class Server:
    """A running PostgreSQL server on 127.0.0.1 with an empty ``DATABASE``."""

    port: int
    log: Path

    def environment(self) -> dict[str, str]:
        """libpq's variables, which deploy/dagster-postgres.yaml reads."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": SUPERUSER,
            "PGPASSWORD": PASSWORD,
            "PGDATABASE": DATABASE,
        }

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Rows of ``sql`` (``%s`` placeholders) read straight from the database, not through
        Dagster."""
        with (
            closing(psycopg2.connect(**self._connection(DATABASE))) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()

    def create_database(self) -> None:
        with closing(psycopg2.connect(**self._connection("postgres"))) as connection:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")

    def _connection(self, database: str) -> dict[str, object]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": SUPERUSER,
            "password": PASSWORD,
            "dbname": database,
        }


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: Debian keeps them off PATH, under
    /usr/lib/postgresql/<version>/bin (the newest version wins); PATH is the fallback."""
    installed = [
        Path(initdb).parent
        for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if (Path(initdb).parent / "pg_ctl").exists()
    ]
    if installed:
        return max(installed, key=lambda bin_dir: _version(bin_dir.parent.name))
    initdb = shutil.which("initdb")
    beside = Path(initdb).parent if initdb else None
    return beside if beside and (beside / "pg_ctl").exists() else None


def _version(name: str) -> list[int]:
    return [int(part) for part in name.split(".") if part.isdigit()]


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode:
        server_log = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}:\n"
            f"{result.stdout}{result.stderr}{server_log}"
        )


@pytest.fixture
def postgres() -> Iterator[Server]:
    """A throwaway server in a temporary data directory on a free port, stopped afterwards.

    As root, initdb and the server run as the ``postgres`` user in a directory it owns (under
    /tmp, since pytest's own temporary directories are closed to other users)."""
    bin_dir = server_binaries()
    if bin_dir is None:
        print(MISSING)
        pytest.skip(MISSING)
    as_owner: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.skip(f"no `{SERVER_USER}` user to run PostgreSQL as: apt-get install postgresql")
        as_owner = ["runuser", "-u", SERVER_USER, "--"]
    root = Path(tempfile.mkdtemp(prefix="talkvid-postgres-", dir="/tmp" if owner else None))
    data, password_file, log = root / "data", root / "password", root / "server.log"
    try:
        password_file.write_text(PASSWORD)
        if owner is not None:
            for path in (root, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            [
                *as_owner, str(bin_dir / "initdb"), "--pgdata", str(data), "--username",
                SUPERUSER, "--pwfile", str(password_file), "--auth-host=scram-sha-256",
                "--auth-local=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
            ]
        )  # fmt: skip
        server = Server(free_port(), log)
        # The socket goes in the temporary directory: /var/run/postgresql may not exist.
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off"
        pg_ctl = [*as_owner, str(bin_dir / "pg_ctl"), "--pgdata", str(data)]
        _run([*pg_ctl, "--log", str(log), "-o", options, "--wait", "start"], log)
        try:
            server.create_database()
            yield server
        finally:
            _run([*pg_ctl, "--mode", "immediate", "--wait", "stop"], log)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_curation_on_postgres_matches_the_local_instance(
    postgres, tmp_path, monkeypatch, curated_talk_carphone
):
    """The deployed file, as a host would use it (copied into DAGSTER_HOME, the connection in
    the environment), against the local instance: the storage backend must change where
    Dagster's records live and nothing that curation writes."""
    for name, value in postgres.environment().items():
        monkeypatch.setenv(name, value)
    dagster_home = tmp_path / "postgres-dagster"
    dagster_home.mkdir()
    shutil.copyfile(POSTGRES_CONFIG, dagster_home / "dagster.yaml")
    deployed = yaml.safe_load(POSTGRES_CONFIG.read_text())
    paths = [SAMPLES / name for name in VIDEOS]

    store = Store(tmp_path / "postgres-home")
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue is not None
        assert queue.tag_concurrency_limits == deployed["concurrency"]["runs"].get(
            "tag_concurrency_limits", []
        )
        keys, outcomes = ingest_and_curate(instance, store, paths)
    assert outcomes
    assert all(outcome.success for outcome in outcomes), [o.error for o in outcomes]

    runs = dict(postgres.query("SELECT run_id, status FROM runs"))
    assert runs == {outcome.run_id: "SUCCESS" for outcome in outcomes}
    [(materializations,)] = postgres.query(
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    )
    assert materializations > 0
    partitions = postgres.query(
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
        video_partitions.name,
    )
    assert sorted(key for (key,) in partitions) == sorted(keys.values())
    limits = postgres.query(
        'SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', GPU_POOL
    )
    assert limits == [(load_config(store.home).gpu_slots,)]
    assert not list(dagster_home.rglob("*.db")), "a SQLite storage file was written"

    local = curated_talk_carphone.store  # the same videos on a SQLite instance
    assert {path.name for path in curated_talk_carphone.keys} == set(VIDEOS)
    clips = store.query("SELECT * FROM clips ORDER BY clip_id")
    assert clips
    assert any(clip["passed"] for clip in clips)
    assert clips == local.query("SELECT * FROM clips ORDER BY clip_id")
    assert store.query("SELECT * FROM videos ORDER BY video_id") == local.query(
        "SELECT * FROM videos ORDER BY video_id"
    )


def test_postgres_instance_keeps_the_local_limits(tmp_path):
    """A Postgres home schedules like a local one, and its run-tag limits name real sensors (a
    renamed sensor would leave a limit that never matches)."""
    local = yaml.safe_load(INSTANCE_CONFIG.read_text())
    deployed = yaml.safe_load(POSTGRES_CONFIG.read_text())
    assert deployed["concurrency"]["pools"] == local["concurrency"]["pools"]
    runs = deployed["concurrency"]["runs"]
    assert runs["max_concurrent_runs"] == local["concurrency"]["runs"]["max_concurrent_runs"]
    assert deployed["run_monitoring"] == local["run_monitoring"]
    assert deployed["sensors"] == local["sensors"]
    sensors = {sensor.name for sensor in build_definitions(tmp_path).sensors}
    named = {
        limit["value"]
        for limit in runs.get("tag_concurrency_limits", [])
        if limit["key"] == "dagster/sensor_name"
    }
    assert named <= sensors
