"""Every scoring backend says, before a run starts, whether it can run here.

Real backends, real models folders (empty, or holding the files ``talkvid models fetch`` puts
there as empty placeholders): readiness only checks that packages and files exist, it never
loads them.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest

from talkvid_assets.core.evaluate.extractors import ROLES
from talkvid_assets.core.models import MODELS
from talkvid_assets.core.motion import cotracker3
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.scoring import unready_backends
from talkvid_assets.core.stages import STAGES

# Model backend -> (its stage, the `talkvid models fetch` name of its weights).
MODEL_BACKENDS = {
    "dover": ("quality", "dover"),
    "insightface": ("head_detail", "insightface-buffalo_l"),
    "retinaface-torch": ("head_detail", "retinaface-torch"),
    "retinaface-torch-r50": ("head_detail", "retinaface-torch"),
}
EMBEDDED = {
    "quality": ("frame-stats",),
    "motion": ("lk",),
    "head_detail": ("retinaface", "dlib-hog"),
}


def place_weights(runtime: Runtime, model: str) -> list[str]:
    """Empty stand-ins for every file the backends of ``model`` read; their names."""
    entry = MODELS[model]
    names = list(entry.reads or (file.name for file in entry.files))
    folder = entry.folder(runtime.models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()
    return names


def test_the_default_and_embedded_backends_are_ready(tmp_path):
    runtime = Runtime(tmp_path, "cpu")  # an empty models folder: embedded backends need none
    defaults = {stage.name: stage.default_backend for stage in STAGES}
    assert unready_backends(defaults, runtime) == {}
    for stage, names in EMBEDDED.items():
        for name in names:
            assert unready_backends({stage: name}, runtime) == {}, name


@pytest.mark.parametrize("backend", sorted(MODEL_BACKENDS))
def test_a_model_backend_without_weights_names_the_fetch_command(tmp_path, backend):
    stage, model = MODEL_BACKENDS[backend]
    reasons = unready_backends({stage: backend}, Runtime(tmp_path, "cpu"))
    assert list(reasons) == [stage]
    assert f"run `talkvid models fetch {model}`" in reasons[stage]
    assert "\n" not in reasons[stage]


@pytest.mark.parametrize("backend", sorted(MODEL_BACKENDS))
def test_a_model_backend_needs_each_of_its_weight_files(tmp_path, backend):
    stage, model = MODEL_BACKENDS[backend]
    runtime = Runtime(tmp_path, "cpu")
    names = place_weights(runtime, model)
    assert unready_backends({stage: backend}, runtime) == {}
    for name in names:
        path = runtime.models_dir / model / name
        path.unlink()
        reasons = unready_backends({stage: backend}, runtime)
        # retinaface-torch's two checkpoints each serve one backbone only
        needed = backend != "retinaface-torch" or name == "mobilenet0.25_Final.pth"
        needed = needed and (backend != "retinaface-torch-r50" or name == "Resnet50_Final.pth")
        if needed:
            assert f"talkvid models fetch {model}" in reasons.get(stage, ""), name
        else:
            assert reasons == {}, name
        path.touch()


def test_cotracker3_without_its_package_says_how_to_install_it(tmp_path):
    if importlib.util.find_spec("cotracker") is not None:
        pytest.skip("the cotracker package is installed here")
    runtime = Runtime(tmp_path, "cpu")
    place_weights(runtime, "cotracker3")  # only the package is missing
    reasons = unready_backends({"motion": "cotracker3"}, runtime)
    assert list(reasons) == ["motion"]
    assert "cotracker package" in reasons["motion"]
    assert cotracker3.INSTALL in reasons["motion"] and "\n" not in reasons["motion"]


def test_every_stage_reports_at_once(tmp_path):
    """One call answers for a whole configuration: each unready stage with its own reason."""
    configured = {"quality": "dover", "motion": "lk", "head_detail": "insightface"}
    reasons = unready_backends(configured, Runtime(tmp_path, "cpu"))
    assert set(reasons) == {"quality", "head_detail"}
    assert "talkvid models fetch dover" in reasons["quality"]
    assert "talkvid models fetch insightface-buffalo_l" in reasons["head_detail"]


def test_an_unknown_backend_is_a_reason_too(tmp_path):
    reasons = unready_backends({"motion": "raft"}, Runtime(tmp_path, "cpu"))
    assert "no motion backend 'raft'" in reasons["motion"]


def test_cotracker3_with_its_package_still_needs_its_checkpoint(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(  # as if the cotracker package were installed
        importlib.util,
        "find_spec",
        lambda name, *args: object() if name == "cotracker" else real_find_spec(name, *args),
    )
    runtime = Runtime(tmp_path, "cpu")
    reasons = unready_backends({"motion": "cotracker3"}, runtime)
    assert "run `talkvid models fetch cotracker3`" in reasons["motion"]
    place_weights(runtime, "cotracker3")
    assert unready_backends({"motion": "cotracker3"}, runtime) == {}


# Every ``module:factory`` the evaluation's registry names (the stages' registries are
# test_imports.py's).
EXTRACTORS = [
    (f"{role}/{name}", target) for role, names in ROLES.items() for name, target in names.items()
]


@pytest.mark.parametrize(("extractor", "target"), EXTRACTORS, ids=[name for name, _ in EXTRACTORS])
def test_every_registered_evaluation_extractor_imports(extractor, target):
    """Each ``module:factory`` the evaluation names is there, without building it (a model
    would load weights): a renamed module or factory fails here, not in a user's run."""
    module, factory = target.split(":")
    assert callable(getattr(importlib.import_module(module), factory)), extractor
