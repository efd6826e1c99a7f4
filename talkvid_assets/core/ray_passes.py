"""Decode passes and model stages on a Ray cluster: a task per video, an actor per model.

The decode pass is the unit of heavy work (one decode feeds the scene and voice detectors and
every embedded scorer), and a video is its natural grain: :func:`ray_decode_passes` sends each
video of a run to the cluster as one Ray task, which calls the same
:func:`~talkvid_assets.core.decode_runs.record_decode_pass` an in-process run calls, on one core
with FFmpeg and OpenCV single-threaded (as the thread pool of ``record_decode_passes`` runs a
video). The task writes the video's Parquet files under the home itself, so the home must be the
same path on every node (a shared filesystem, as for Celery workers); the run's process only
waits. Ray keeps its worker processes, so torch, OpenCV and onnxruntime are imported once per
worker, not once per video.

A model stage (DOVER, CoTracker3, a torch face detector) runs in an actor per backend, named
after the backend's build and detached from the run: the model it loads on its first clip
stays in (GPU) memory for every later video and every later run, which neither a pod per step
nor a Celery worker (each run rebuilds its backends) can offer. The actor replays the
recorded cuts, as a model step does in process.

Ray is the ``scale`` extra: it is imported only here, and only when a run asks for it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from talkvid_assets.core.decode_pass import DecodeOptions
from talkvid_assets.core.decode_runs import Tables, record_decode_pass, single_threaded_opencv
from talkvid_assets.core.scoring import ScorerBackend, load_backend
from talkvid_assets.core.store import Store

if TYPE_CHECKING:
    from ray import ObjectRef
    from ray.actor import ActorHandle

    from talkvid_assets.core.runtime import Runtime

# Named actors live in a namespace; the drivers of every run join this one to find them.
NAMESPACE = "talkvid"
# How long a failed run waits for its other videos' tasks to stop after cancelling them.
CANCEL_WAIT_S = 30.0
# (stage, backend name, backend version): what a Ray process rebuilds a backend from. Backends
# are rebuilt, never pickled: a model backend may hold weights or an unpicklable session.
BackendSpec = tuple[str, str, str]

log = logging.getLogger(__name__)


class BuildMismatch(RuntimeError):
    """A Ray process built another version of a backend than the run's: the cluster's image
    and the code location's differ, and their scores would not be comparable."""


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``host:6379`` on a cluster node, ``ray://host:10001``
    through Ray Client from anywhere else, ``auto`` for the local node's cluster) once per
    process; later calls reuse the connection.

    ``ray.init`` replaces the process's SIGTERM handler with one that exits at once; the
    previous handler is put back, so a terminated run still fails as an interrupted run (and
    `talkvid curate` still reports it) rather than vanishing mid-step.
    """
    import ray

    if ray.is_initialized():
        return
    previous = signal.getsignal(signal.SIGTERM)
    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def backend_specs(backends: Mapping[str, ScorerBackend]) -> list[BackendSpec]:
    """What names each backend of the run: rebuilt from this on the cluster."""
    return [(stage, backend.name, backend.version) for stage, backend in backends.items()]


def rebuild_backends(
    specs: Sequence[BackendSpec], runtime: Runtime | None
) -> dict[str, ScorerBackend]:
    """The run's backends, built again in this process; :class:`BuildMismatch` when a version
    differs from the run's."""
    backends = {}
    for stage, name, version in specs:
        backend = load_backend(stage, name, runtime)
        if backend.version != version:
            raise BuildMismatch(
                f"{stage} backend {name}: this Ray node builds {backend.version}, the run "
                f"{version}; run the same talkvid-assets image on the cluster and the run"
            )
        backends[stage] = backend
    return backends


def placement() -> dict[str, Any]:
    """Where a Ray task or actor method runs: its process id and Ray node."""
    import ray

    return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}


def decode_one(
    home: str, video_id: str, specs: Sequence[BackendSpec], options: DecodeOptions, segments: bool
) -> tuple[Tables, dict[str, Any]]:
    """The body of a decode-pass task: one video's pass on one core, written under ``home``;
    its tables and where it ran."""
    backends = rebuild_backends(specs, options.runtime)
    one_core = dataclasses.replace(options, decoder_threads=1)
    with single_threaded_opencv():
        tables = record_decode_pass(Store(home), video_id, backends, one_core, segments=segments)
    return tables, placement()


@functools.cache
def _decode_task() -> Any:
    import ray

    # One core per video, the thread pool's share; Ray retries nothing: a failed pass is the
    # run's failure, and Dagster retries runs.
    return ray.remote(num_cpus=1, max_retries=0)(decode_one)


def ray_decode_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    address: str,
    options: DecodeOptions,
    segments: bool = True,
) -> Tables:
    """:func:`~talkvid_assets.core.decode_runs.record_decode_passes` on the Ray cluster at
    ``address``: a task per video, all submitted at once (the cluster's free cores decide how
    many run together), their tables merged in ``video_ids`` order.

    As in process, the first video to fail (or an interrupt) cancels the others and its own
    error is raised; the cancelled tasks are awaited, so a retry never meets one still
    writing.
    """
    connect(address)
    specs = backend_specs(backends)
    task = _decode_task()
    refs = [
        (
            task.options(name=f"decode_pass {key}").remote(
                str(store.home), key, specs, options, segments
            ),
            key,
        )
        for key in video_ids
    ]
    return _gather(refs)


def _gather(refs: Sequence[tuple[ObjectRef, str]]) -> Tables:
    """The tables of every task, merged in the order of ``refs`` (ref, video id) whatever
    order they finish in; on the first error or an interrupt, cancel the rest, wait for them
    and raise the video's own error rather than Ray's wrapper."""
    import ray
    from ray.exceptions import RayTaskError

    videos = dict(refs)
    pending, written = list(videos), {}
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                written[ref], where = ray.get(ref)
                log.info("pass of %s ran in pid %s on Ray node %s", videos[ref], *where.values())
    except BaseException as error:
        for ref in pending:
            ray.cancel(ref)
        ray.wait(pending, num_returns=len(pending), timeout=CANCEL_WAIT_S)
        if isinstance(error, RayTaskError) and isinstance(error.cause, Exception):
            raise error.cause from error
        raise
    tables: Tables = {}
    for ref, _ in refs:
        for table, rows in written[ref].items():
            tables.setdefault(table, []).extend(rows)
    return tables


class ModelScorer:
    """A model backend, built once and kept: the body of a model stage's actor."""

    def __init__(self, spec: BackendSpec, runtime: Runtime | None) -> None:
        self.stage = spec[0]
        self.backends = rebuild_backends([spec], runtime)

    def score(
        self, home: str, video_id: str, options: DecodeOptions, reencoded: bool
    ) -> tuple[Tables, dict[str, Any]]:
        """One video's scores for this stage, from the recorded cuts, written under ``home``."""
        tables = record_decode_pass(
            Store(home), video_id, self.backends, options, segments=False, reencoded=reencoded
        )
        return tables, placement()


def model_actor(spec: BackendSpec, runtime: Runtime | None, gpus: float) -> ActorHandle:
    """The stage's actor for this backend build, started on first use with ``gpus`` GPUs (a
    fraction shares one) and kept across runs; the stage's actors of another backend or build
    are stopped, so they give their GPU back."""
    import ray

    stage, name, version = spec
    actor_name = f"{stage}:{name}@{version}"
    for known in ray.util.list_named_actors(all_namespaces=True):
        older = known["name"].startswith(f"{stage}:") and known["name"] != actor_name
        if known["namespace"] == NAMESPACE and older:
            ray.kill(ray.get_actor(known["name"], namespace=NAMESPACE))
    # One video at a time: the model holds its GPU (or cores) for a whole pass.
    return (
        ray.remote(ModelScorer)
        .options(
            name=actor_name,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=1,
            num_gpus=gpus,
            max_concurrency=1,
        )
        .remote(spec, runtime)
    )


def ray_model_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    address: str,
    gpus: float,
    options: DecodeOptions,
    reencoded: bool = False,
) -> Tables:
    """A model stage's passes (the recorded cuts are replayed) on the actors of ``backends``
    on the cluster at ``address``, one video after another per actor; the tables merged as
    :func:`ray_decode_passes` merges them."""
    connect(address)
    refs = []
    for spec in backend_specs(backends):
        actor = model_actor(spec, options.runtime, gpus)
        refs += [
            (actor.score.remote(str(store.home), key, options, reencoded), key) for key in video_ids
        ]
    return _gather(refs)
