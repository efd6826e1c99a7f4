"""Which executor runs the curate job's steps: the run's own process, unless the deployment asks
for Celery workers (``TALKVID_EXECUTOR=celery``), a Kubernetes pod per step (``k8s``) or a Ray
cluster for the heavy work (``ray``).

In-process is the default because a fresh step process imports torch, OpenCV and Dagster again
(about 4 s) for work that takes about as long. Past one machine, a Celery worker pays that once
(it runs step after step) and spreads the decode passes over every machine that mounts the same
``$TALKVID_HOME``; on Kubernetes a pod per step is what lets a model step's ``dagster-k8s/config``
tag ask for a GPU node while the decode pass stays on CPU nodes. Either only changes *where* a
step runs, and only for runs launched through the instance (the webserver, the daemon,
``dagster asset materialize``, ``execute_job``): ``execute_in_process`` keeps every step in its
own process whatever the job's executor.

Ray moves less than a step and more than a process: with ``TALKVID_EXECUTOR=ray`` the steps stay
in the run's process, but the decode-pass step sends each of its videos to the cluster at
``$TALKVID_RAY_ADDRESS`` as a Ray task, and a model step sends its videos to an actor that keeps
the model loaded across videos and runs (core.ray_passes). The run, its events and per-partition
metadata are those of an in-process run; so is every route, ``talkvid curate`` and
``execute_in_process`` included, since the switch is read where the step runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import ExecutorDefinition, in_process_executor

from talkvid_assets.core.decode_pass import DecodeOptions
from talkvid_assets.core.decode_runs import Tables, record_decode_passes
from talkvid_assets.core.scoring import ScorerBackend
from talkvid_assets.core.store import Store

EXECUTOR_ENV = "TALKVID_EXECUTOR"
BROKER_ENV = "TALKVID_CELERY_BROKER"  # e.g. redis://redis:6379/0
BACKEND_ENV = "TALKVID_CELERY_BACKEND"  # optional: the broker's URL (Redis serves as both)
# host:6379 from a Ray node, ray://host:10001 (Ray Client) from anywhere else.
RAY_ADDRESS_ENV = "TALKVID_RAY_ADDRESS"
RAY_MODEL_GPUS_ENV = "TALKVID_RAY_MODEL_GPUS"  # GPUs per model actor (0.5 shares one); default 0
IN_PROCESS, CELERY, K8S, RAY = "in_process", "celery", "k8s", "ray"


class ScaleConfigError(ValueError):
    """The environment asks for an executor that cannot be built; the message says what to set."""


def celery_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The Celery executor's config block, for the executor and for every worker's ``-y`` file.

    Broker and result backend are references to the environment variables rather than their
    values, so a password in a Redis URL never lands in the job snapshot that the UI shows. The
    backend defaults to the broker's URL; a worker given another backend (dagster-celery's
    default is ``rpc://``) stores results where the run never looks, and the run waits forever.
    """
    backend = BACKEND_ENV if environ.get(BACKEND_ENV) else BROKER_ENV
    return {"broker": {"env": BROKER_ENV}, "backend": {"env": backend}}


def executor_from_env(environ: Mapping[str, str] = os.environ) -> ExecutorDefinition:
    """The executor named by ``$TALKVID_EXECUTOR``: ``in_process`` (the default), ``celery``,
    ``k8s`` or ``ray`` (the in-process executor: the steps hand their videos to Ray).

    The Celery settings are read where the run orchestrates, so the run's process needs the same
    variables as the workers. The Kubernetes executor takes its image, namespace, environment and
    volumes from the K8sRunLauncher and the code location, so it needs no settings here. Raises
    :class:`ScaleConfigError` for an unknown executor, a Celery executor without a broker or Ray
    without an address, when the definitions load rather than when a run starts.
    """
    name = _selected(environ)
    # dagster-celery, dagster-k8s and ray are the `scale` extra: imported only when asked for.
    if name == IN_PROCESS:
        return in_process_executor
    if name == RAY:
        ray_address(environ)
        return in_process_executor
    if name == K8S:
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if name != CELERY:
        raise ScaleConfigError(
            f"{EXECUTOR_ENV}={name!r} is not an executor: use {IN_PROCESS!r}, {CELERY!r}, "
            f"{K8S!r} or {RAY!r}"
        )
    if not environ.get(BROKER_ENV):
        raise ScaleConfigError(
            f"{EXECUTOR_ENV}={CELERY} needs {BROKER_ENV}, the broker URL the workers listen on "
            "(e.g. redis://redis:6379/0)"
        )
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(environ))


def _selected(environ: Mapping[str, str]) -> str:
    return environ.get(EXECUTOR_ENV, "").strip() or IN_PROCESS


def ray_address(environ: Mapping[str, str] = os.environ) -> str:
    """The Ray cluster's address, or :class:`ScaleConfigError` saying what to set."""
    address = environ.get(RAY_ADDRESS_ENV, "").strip()
    if not address:
        raise ScaleConfigError(
            f"{EXECUTOR_ENV}={RAY} needs {RAY_ADDRESS_ENV}, the Ray cluster's address "
            "(ray://ray-head:10001 through Ray Client, or host:6379 from a Ray node)"
        )
    return address


def decode_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    options: DecodeOptions | None = None,
    *,
    segments: bool = True,
    environ: Mapping[str, str] = os.environ,
) -> Tables:
    """The decode-pass step's videos: a Ray task each on the cluster when ``$TALKVID_EXECUTOR``
    is ``ray``, else threads of this process (:func:`record_decode_passes`). Same arguments,
    same tables written, same result."""
    options = options or DecodeOptions()
    if _selected(environ) != RAY:
        return record_decode_passes(store, video_ids, backends, options, segments=segments)
    from talkvid_assets.core.ray_passes import ray_decode_passes

    return ray_decode_passes(
        store, video_ids, backends, ray_address(environ), options, segments=segments
    )


def model_passes(
    store: Store,
    video_ids: Sequence[str],
    backends: Mapping[str, ScorerBackend],
    options: DecodeOptions | None = None,
    *,
    reencoded: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> Tables:
    """A model step's videos, one at a time, from the recorded cuts (re-encoded as the
    reference cuts them with ``reencoded``): on the backend's actor on the Ray cluster (the
    model stays loaded) when ``$TALKVID_EXECUTOR`` is ``ray``, else in this process with a
    backend built for this step."""
    options = options or DecodeOptions()
    if _selected(environ) != RAY:
        return record_decode_passes(
            store, video_ids, backends, options, segments=False, reencoded=reencoded, workers=1
        )
    from talkvid_assets.core.ray_passes import ray_model_passes

    gpus = float(environ.get(RAY_MODEL_GPUS_ENV) or 0)
    return ray_model_passes(
        store, video_ids, backends, ray_address(environ), gpus, options, reencoded=reencoded
    )
