"""Which executor runs the curate job's steps: the run's own process, unless the deployment asks
for Celery workers (``TALKVID_EXECUTOR=celery``) or a Kubernetes pod per step (``k8s``).

In-process is the default because a fresh step process imports torch, OpenCV and Dagster again
(about 4 s) for work that takes about as long. Past one machine, a Celery worker pays that once
(it runs step after step) and spreads the decode passes over every machine that mounts the same
``$TALKVID_HOME``; on Kubernetes a pod per step is what lets a model step's ``dagster-k8s/config``
tag ask for a GPU node while the decode pass stays on CPU nodes. Either only changes *where* a
step runs, and only for runs launched through the instance (the webserver, the daemon,
``dagster asset materialize``, ``execute_job``): ``execute_in_process`` keeps every step in its
own process whatever the job's executor.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from dagster import ExecutorDefinition, in_process_executor

EXECUTOR_ENV = "TALKVID_EXECUTOR"
BROKER_ENV = "TALKVID_CELERY_BROKER"  # e.g. redis://redis:6379/0
BACKEND_ENV = "TALKVID_CELERY_BACKEND"  # optional: the broker's URL (Redis serves as both)
IN_PROCESS, CELERY, K8S = "in_process", "celery", "k8s"


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
    """The executor named by ``$TALKVID_EXECUTOR``: ``in_process`` (the default), ``celery`` or
    ``k8s``.

    The Celery settings are read where the run orchestrates, so the run's process needs the same
    variables as the workers. The Kubernetes executor takes its image, namespace, environment and
    volumes from the K8sRunLauncher and the code location, so it needs no settings here. Raises
    :class:`ScaleConfigError` for an unknown executor or a Celery executor without a broker, when
    the definitions load rather than when a run starts.
    """
    name = environ.get(EXECUTOR_ENV, "").strip() or IN_PROCESS
    # dagster-celery and dagster-k8s are the `scale` extra: imported only when asked for.
    if name == IN_PROCESS:
        return in_process_executor
    if name == K8S:
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if name != CELERY:
        raise ScaleConfigError(
            f"{EXECUTOR_ENV}={name!r} is not an executor: use {IN_PROCESS!r}, {CELERY!r} or {K8S!r}"
        )
    if not environ.get(BROKER_ENV):
        raise ScaleConfigError(
            f"{EXECUTOR_ENV}={CELERY} needs {BROKER_ENV}, the broker URL the workers listen on "
            "(e.g. redis://redis:6379/0)"
        )
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(environ))
