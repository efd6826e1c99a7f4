"""How talkvid_assets's modules depend on each other, and that every registered backend exists.

Both read declarations rather than run pipelines, so they take a second and catch what only a
rarely used route would otherwise show: a module pair that needs each other, a backend string
that names no importable class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import talkvid_assets
from talkvid_assets.core.language import LanguageBackend
from talkvid_assets.core.runtime import Runtime
from talkvid_assets.core.stages import (
    LANGUAGE_IDS,
    SCENE_DETECTORS,
    STAGES,
    BackendUnavailable,
    load_entry,
)

PACKAGE = Path(talkvid_assets.__file__).parent


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its text."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; any other name is the base's.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once explored
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_module_imports_itself_through_others():
    """No two modules of the package depend on each other, directly or through others.

    Every import statement counts, wherever it stands: at module level, under
    ``if TYPE_CHECKING:`` and inside a function. A cycle hidden in a function or a type
    annotation is still a cycle of concepts (each module needs the other to be understood or
    run), and a function-local import placed only to dodge one is the smell this test exists
    to catch. Lazy imports that defer a heavy package (torch, OpenCV) stay lazy: they import
    the package's leaves, never back up. A backend named in a registry
    (``core.stages``) is imported by its string, so optional backends are no edge. A module's
    parent packages, which Python runs first, are no edge either: ``talkvid_assets/__init__``
    re-exports the public API and would otherwise close a cycle through every module.
    """
    modules = module_names()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_sees_a_cycle():
    """The check above would see a cycle of three (the finder is not vacuous)."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


SCORERS = [
    (stage.name, name, target) for stage in STAGES for name, target in stage.backends.items()
]


@pytest.mark.parametrize(
    ("stage", "name", "target"), SCORERS, ids=[f"{s}-{n}" for s, n, _ in SCORERS]
)
def test_every_registered_scorer_builds_the_backend_it_names(stage, name, target, tmp_path):
    """Each stage backend's string (every quality, motion, face and sync backend) imports, and
    its factory builds a backend that calls itself by the registered name. Building one reads
    no weights, so this runs without any fetched."""
    factory = load_entry(f"{stage} backend", name, target)
    backend = factory(Runtime(tmp_path / "models", "cpu"))
    assert backend.name == name
    assert callable(backend.new_clip) and callable(backend.ready)


@pytest.mark.parametrize(("name", "target"), SCENE_DETECTORS.items(), ids=list(SCENE_DETECTORS))
def test_every_registered_scene_detector_is_its_class(name, target):
    """Each scene detector's string names a class keyed by its own ``name``, with the
    registry's constructor and the streaming protocol's methods."""
    detector = load_entry("scene detector", name, target)
    assert detector.name == name
    assert callable(detector.for_video)
    assert all(callable(getattr(detector, method)) for method in ("push", "flush"))


@pytest.mark.parametrize(("name", "target"), LANGUAGE_IDS.items(), ids=list(LANGUAGE_IDS))
def test_every_registered_language_id_is_a_language_backend(name, target):
    language = load_entry("language_id", name, target)
    assert issubclass(language, LanguageBackend)
    assert language.name == name


def test_a_missing_package_is_a_backend_unavailable_and_a_missing_module_a_bug():
    """A backend whose third-party package is absent is refused with its name; a registry
    string naming a module of this project that does not exist is no such excuse."""
    with pytest.raises(BackendUnavailable, match="needs the package 'no_such_package'"):
        load_entry("scene detector", "x", "no_such_package.detector:Cuts")
    with pytest.raises(ModuleNotFoundError):
        load_entry("scene detector", "x", "talkvid_assets.core.scenes.nothing:Cuts")
