"""The inbox sensor at scale: a tick costs what changed, its cursor stays small, hashing stays
within its budget, a large file goes to a run, and the settle rule and content keys hold.

Real files, a real instance and the real sensor, evaluated as the daemon would (the test applies
the partition requests it returns, as the daemon does)."""

import json
import os
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunRequest, SensorResult, build_sensor_context

from talkvid_assets.core.partition_keys import content_key, partition_key
from talkvid_assets.core.source_files import video_key
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.partitions import video_partitions
from talkvid_assets.defs.resources import TalkvidResource
from talkvid_assets.defs.sensors import (
    BUDGET_ENV,
    HASH_BYTES_PER_S,
    INBOX_FILE_TAG,
    PENDING_CAP,
    QUIET_ENV,
    inbox_ingest,
    inbox_sensor,
)
from talkvid_assets.launch import sigterm_kept
from talkvid_assets_tests.conftest import configure, project_instance
from talkvid_assets_tests.media import SAMPLES


class Inbox:
    """A home with an inbox folder, its instance, and the sensor's cursor between ticks."""

    def __init__(self, home: Path, instance: DagsterInstance) -> None:
        self.home, self.folder, self.instance = home, home / "inbox", instance
        self.store = Store(home)
        self.resource = TalkvidResource(home=str(home))
        self.cursor: str | None = None
        self.seconds: list[float] = []  # wall time of each tick
        # CPU time of this thread (where the sensor hashes) in each tick: what bounds assert on,
        # since a machine at a load of 10 stretches every tick's wall time five-fold or more.
        self.cpu_seconds: list[float] = []

    def tick(self) -> SensorResult:
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"talkvid": self.resource}
        )
        started, cpu = time.perf_counter(), time.thread_time()
        result = inbox_sensor(context)
        self.seconds.append(time.perf_counter() - started)
        self.cpu_seconds.append(time.thread_time() - cpu)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests:  # what the daemon does with them
            self.instance.add_dynamic_partitions(
                request.partitions_def_name, list(request.partition_keys)
            )
        return result

    def run(self, request: RunRequest) -> bool:
        """The ``inbox_ingest`` run ``request`` asks for, in this process, as the daemon would
        launch it; whether it succeeded. SIGTERM is put back after it, as the product's own
        in-process runs do (launch.sigterm_kept)."""
        with sigterm_kept():
            outcome = inbox_ingest.execute_in_process(
                run_config=request.run_config,
                tags=request.tags,
                instance=self.instance,
                resources={"talkvid": self.resource},
            )
        return outcome.success

    def content_keys(self) -> set[str]:
        """The content keys behind the partitions (a partition key also names its file)."""
        return {content_key(key) for key in self.partitions()}

    def partitions(self) -> set[str]:
        return set(self.instance.get_dynamic_partitions(video_partitions.name))

    def pending(self) -> dict:
        return json.loads(self.cursor or "{}").get("pending", {})

    def recent(self) -> list[str]:
        return json.loads(self.cursor or "{}").get("recent", [])


@pytest.fixture
def inbox(tmp_path, monkeypatch):
    monkeypatch.setenv(QUIET_ENV, "0")  # two looks settle a file; the quiet period has its test
    home = tmp_path / "home"
    configure(home)
    (home / "inbox").mkdir()
    with project_instance(tmp_path / "dagster") as instance:
        yield Inbox(home, instance)


def partition_key_of(path: Path) -> str:
    """The partition the inbox gives a file: its name, then its content key."""
    return partition_key(path, video_key(path))


def drop(path: Path, content: bytes, size: int | None = None) -> Path:
    """A file of ``content``, extended with a hole to ``size`` bytes (cheap to make, hashed
    like any other bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
        if size is not None:
            handle.truncate(size)
    return path


def swap_content_keeping_stamp(path: Path) -> None:
    """Other bytes of the same size under the same mtime: only a read of the file can tell."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_settled_known_file_is_not_read_again(inbox):
    # One registered before the sensor's process knew the home (found in `sources`), one
    # ingested by the sensor itself.
    earlier = drop(inbox.folder / "earlier.mp4", b"registered by talkvid ingest")
    earlier_key, _ = register_source(inbox.store, earlier)
    dropped = drop(inbox.folder / "sub" / "dropped.mp4", b"dropped into the inbox")
    inbox.tick()
    inbox.tick()
    dropped_key = partition_key_of(dropped)
    assert inbox.partitions() == {dropped_key}
    assert inbox.pending() == {}

    for path in (earlier, dropped):
        swap_content_keeping_stamp(path)
    for _ in range(3):
        result = inbox.tick()
        assert not result.dynamic_partitions_requests and not result.run_requests
    # Had either file been read again, its new content would be registered under a new key.
    assert inbox.partitions() == {dropped_key}
    keys = {row["video_id"] for row in inbox.store.query("SELECT video_id FROM sources")}
    assert keys == {earlier_key, dropped_key}
    assert inbox.pending() == {}


def test_the_cursor_stays_small_as_the_inbox_grows(inbox):
    def settle_all(count: int) -> list[int]:
        """Tick until all ``count`` files are partitions; the cursor's size after each tick."""
        sizes = []
        for _ in range(12):
            inbox.tick()
            sizes.append(len(inbox.cursor))
            assert len(inbox.pending()) <= PENDING_CAP
            if not inbox.pending() and len(inbox.partitions()) == count:
                return sizes
        raise AssertionError(f"not settled: {inbox.cursor[:300]}")

    def add(start: int, stop: int) -> None:
        for index in range(start, stop):
            path = inbox.folder / f"batch{index // 100:02d}" / f"{index:05d}.mp4"
            drop(path, b"video %d" % index)

    add(0, 10)
    small = settle_all(10)[-1]
    add(10, 2000)
    draining = settle_all(2000)
    print(f"\ncursor: {small} B at 10 files, {draining[-1]} B at 2,000 (at most {max(draining)})")
    assert draining[-1] <= 2 * small < 4096  # the last few files handled, nothing per file
    # While files settle, each is followed with its path and state, and no more than the cap.
    longest = max(len(str(path)) for path in inbox.folder.rglob("*.mp4"))
    assert max(draining) <= 4096 + PENDING_CAP * (longest + 40)


def test_a_drop_larger_than_the_budget_arrives_over_several_ticks(inbox, monkeypatch):
    budget = 0.2
    monkeypatch.setenv(BUDGET_ENV, str(budget))
    size = int(budget / 2 * HASH_BYTES_PER_S)  # each fits in a budget; all of them do not
    paths = [
        drop(inbox.folder / f"{index:03d}.mp4", b"clip %d" % index, size) for index in range(48)
    ]
    handled_per_tick, by_run = [], 0
    for _ in range(2 * len(paths)):  # at load 10 a tick hashed one file, or none
        partitions = len(inbox.partitions())
        # A file first in line that its tick could not finish goes to a run: at load 10 with
        # four busy processes (a tenth of a core here) even a file of half the budget can.
        requests = inbox.tick().run_requests
        handled_per_tick.append(len(inbox.partitions()) - partitions)
        by_run += len(requests)
        assert all(inbox.run(request) for request in requests)
        if not inbox.pending():
            break
    keys = {
        partition_key_of(path) for path in paths
    }  # after the ticks: the sensor hashed them first
    print(f"\n{len(keys)} files of {size:,} bytes, per tick: {handled_per_tick}, by run: {by_run}")
    print("tick seconds: " + ", ".join(f"{seconds:.2f}" for seconds in inbox.seconds))
    print("tick CPU seconds: " + ", ".join(f"{seconds:.2f}" for seconds in inbox.cpu_seconds))
    assert inbox.partitions() == keys
    assert sum(1 for count in handled_per_tick if count) >= 3
    assert max(inbox.cpu_seconds) < budget + 0.5
    assert inbox.pending() == {}


def test_a_file_too_large_for_one_budget_is_ingested_by_a_run(inbox, monkeypatch):
    budget = 0.05
    monkeypatch.setenv(BUDGET_ENV, str(budget))
    large = drop(inbox.folder / "large.mp4", b"a long talk", int(4 * budget * HASH_BYTES_PER_S))
    small = drop(inbox.folder / "small.mp4", b"a short talk")
    inbox.tick()
    requests = {request.run_key: request for request in inbox.tick().run_requests}
    stat = large.stat()
    request = requests.pop(f"{large}:{stat.st_size}:{stat.st_mtime_ns}")
    assert str(large) in inbox.pending()  # followed until its run is done
    # The small file is hashed in the tick; at load 10 (a tenth of a core) even it can miss the
    # 50 ms budget, and then, first in line, it goes to a run of its own.
    assert all(inbox.run(other) for other in requests.values())
    assert inbox.partitions() == {partition_key_of(small)}

    assert inbox.run(request)
    assert inbox.partitions() == {partition_key_of(small), partition_key_of(large)}
    result = inbox.tick()
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert inbox.pending() == {}
    assert request.run_key in inbox.recent()


def test_a_growing_file_is_ingested_once_settled(inbox):
    path = inbox.folder / "copying.mp4"
    chunks = [b"header", b"first second", b"second second", b"last second"]
    with open(path, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            handle.flush()
            result = inbox.tick()
            assert not result.dynamic_partitions_requests
            assert inbox.partitions() == set()
    inbox.tick()
    assert inbox.partitions() == {partition_key_of(path)}
    (row,) = inbox.store.query("SELECT size_bytes FROM sources")
    assert row["size_bytes"] == len(b"".join(chunks))


def test_the_same_bytes_under_two_names_give_one_partition(inbox):
    first = drop(inbox.folder / "talk.mp4", b"the same talk")
    second = drop(inbox.folder / "again" / "talk copy.mp4", b"the same talk")
    inbox.tick()
    inbox.tick()
    key = partition_key_of(first)
    assert inbox.partitions() == {key}
    (source,) = inbox.store.query("SELECT source_path FROM sources")
    assert source["source_path"] == str(first)
    assert {stamp.rsplit(":", 2)[0] for stamp in inbox.recent()} == {str(first), str(second)}

    # The second name is remembered as handled too: not read again on later ticks.
    swap_content_keeping_stamp(second)
    for _ in range(2):
        result = inbox.tick()
        assert not result.dynamic_partitions_requests and not result.run_requests
    assert inbox.partitions() == {key}
    assert inbox.pending() == {}


def test_a_copy_that_stalls_halfway_is_not_taken_until_complete(inbox):
    whole = (SAMPLES / "talk_demo.mp4").read_bytes()  # moov after mdat, as most encoders write
    path = inbox.folder / "talk.mp4"
    for cut in (len(whole) // 2, len(whole) - 100):  # half the media; all but part of moov
        path.write_bytes(whole[:cut])
        for _ in range(3):  # settled by size and mtime, yet its container is incomplete
            result = inbox.tick()
        assert inbox.partitions() == set() and not result.run_requests
        assert "1 incomplete" in result.skip_reason.skip_message
    path.write_bytes(whole)
    inbox.tick()
    inbox.tick()
    assert inbox.content_keys() == {video_key(SAMPLES / "talk_demo.mp4")}


def test_a_stalled_copy_of_an_undeclared_container_waits_out_the_quiet_period(inbox, monkeypatch):
    monkeypatch.setenv(QUIET_ENV, "3")
    path = drop(inbox.folder / "talk.mkv", b"a Matroska file has no declared length")
    for _ in range(3):
        inbox.tick()
    assert inbox.partitions() == set()
    time.sleep(3.5)
    inbox.tick()
    assert inbox.content_keys() == {video_key(path)}


def test_stray_files_and_copies_in_progress_are_left_alone(inbox):
    drop(inbox.folder / "README.txt", b"notes about these videos")
    drop(inbox.folder / "cover.jpg", b"not a video either")
    part = drop(inbox.folder / "talk.mp4.part", (SAMPLES / "talk_demo.mp4").read_bytes())
    for _ in range(3):
        inbox.tick()
    assert inbox.partitions() == set()
    assert inbox.store.query("SELECT count(*) AS n FROM sources") == [{"n": 0}]
    part.rename(inbox.folder / "talk.mp4")  # the atomic-rename convention
    inbox.tick()
    inbox.tick()
    assert inbox.content_keys() == {video_key(SAMPLES / "talk_demo.mp4")}


def test_a_huge_file_never_holds_up_a_small_video_dropped_with_it(inbox):
    huge = drop(inbox.folder / "a huge talk.mp4", b"huge", 64 * 2**30)  # sparse: 64 GiB
    small = inbox.folder / "small.mp4"
    small.write_bytes((SAMPLES / "talk_demo.mp4").read_bytes())
    os.utime(huge, ns=(1, 1))  # the oldest, first in line
    inbox.tick()
    result = inbox.tick()
    assert inbox.content_keys() == {video_key(small)}
    assert [request.tags[INBOX_FILE_TAG] for request in result.run_requests] == [
        f"{huge}:{64 * 2**30}:1"
    ]
    assert max(inbox.cpu_seconds) < 10, inbox.cpu_seconds  # hashing 64 GiB takes a minute
