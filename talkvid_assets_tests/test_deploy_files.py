"""The deployment files agree with each other and with the code: the compose services share one
home and one Postgres instance, workers and runs read the same Celery settings, the image has
the paths the compose file mounts, and the Helm values use only keys the official chart knows.
On the Ray path, the compose override and the KubeRay cluster run the runs' image, mount the same
home at the same path and listen where TALKVID_RAY_ADDRESS points. `docker compose config` checks
the compose files themselves where Compose v2 is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from dagster import in_process_executor
from dagster._core.instance.config import validate_concurrency_config

from talkvid_assets.defs.automation import TICK_SETTLE_ENV, TICK_SETTLE_S
from talkvid_assets.defs.model_stages import GPU_OP_TAGS
from talkvid_assets.defs.scale import (
    BROKER_ENV,
    RAY_ADDRESS_ENV,
    RAY_MODEL_GPUS_ENV,
    celery_config,
    executor_from_env,
)

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
VALUES = DEPLOY / "helm" / "values.yaml"
POSTGRES_INSTANCE = DEPLOY / "dagster-postgres.yaml"
RAY_COMPOSE = DEPLOY / "docker-compose.ray.yaml"
RAYCLUSTER = DEPLOY / "helm" / "raycluster.yaml"
SCALE_EXTRA = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]["scale"]
RAY_PIN = next(pin.split("==")[1] for pin in SCALE_EXTRA if pin.startswith("ray["))
TALKVID_SERVICES = ("code", "webserver", "daemon", "worker")
MODULE = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]

# Keys of the official chart's values.schema.json (chart 1.13.x), at the places where the chart
# silently ignores an unknown key (the top level, a user deployment) or refuses the install.
CHART_KEYS: dict[tuple[str, ...], set[str]] = {
    (): {
        "dagsterWebserver", "dagster-user-deployments", "postgresql",
        "generatePostgresqlPasswordSecret", "generateCeleryConfigSecret", "rabbitmq", "redis",
        "flower", "ingress", "imagePullSecrets", "computeLogManager", "scheduler", "runLauncher",
        "pythonLogs", "dagsterDaemon", "busybox", "migrate", "telemetry", "serviceAccount",
        "global", "retention", "additionalInstanceConfig",
    },
    ("dagster-user-deployments",): {"enabled", "enableSubchart", "imagePullSecrets", "deployments"},
    ("runLauncher",): {"type", "config"},
    ("runLauncher", "config", "k8sRunLauncher"): {
        "image", "imagePullPolicy", "jobNamespace", "loadInclusterConfig", "kubeconfigFile",
        "envConfigMaps", "envSecrets", "envVars", "volumeMounts", "volumes", "labels",
        "failPodOnRunFailure", "resources", "schedulerName", "securityContext", "runK8sConfig",
    },
    ("runLauncher", "config", "k8sRunLauncher", "runK8sConfig"): {
        "containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig",
        "jobMetadata",
    },
    ("postgresql",): {
        "image", "enabled", "postgresqlHost", "postgresqlUsername", "postgresqlPassword",
        "postgresqlDatabase", "postgresqlParams", "postgresqlScheme", "service",
    },
    ("dagsterDaemon",): {
        "enabled", "image", "runCoordinator", "heartbeatTolerance", "env", "envConfigMaps",
        "envSecrets", "deploymentLabels", "labels", "nodeSelector", "affinity", "tolerations",
        "podSecurityContext", "securityContext", "resources", "checkDbReadyInitContainer",
        "livenessProbe", "readinessProbe", "startupProbe", "annotations", "runMonitoring",
        "runRetries", "sensors", "schedules", "backfills", "schedulerName", "volumeMounts",
        "volumes", "initContainerResources", "extraContainers", "extraPrependedInitContainers",
    },
    ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator"): {
        "maxConcurrentRuns", "tagConcurrencyLimits", "dequeueIntervalSeconds",
        "dequeueNumWorkers", "dequeueUseThreads", "blockOpConcurrencyLimitedRuns",
    },
}  # fmt: skip
USER_DEPLOYMENT_KEYS = {
    "name", "image", "dagsterApiGrpcArgs", "codeServerArgs", "includeConfigInLaunchedRuns",
    "deploymentNamespace", "port", "env", "envConfigMaps", "envSecrets", "annotations",
    "nodeSelector", "affinity", "tolerations", "podSecurityContext", "securityContext",
    "resources", "livenessProbe", "readinessProbe", "startupProbe", "labels", "volumeMounts",
    "volumes", "schedulerName", "initContainers", "sidecarContainers", "deploymentStrategy",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def env_references(node: Any) -> Iterator[str]:
    """The variables a Dagster config names as ``{env: NAME}``, anywhere in ``node``."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            yield node["env"]
        for child in node.values():
            yield from env_references(child)
    elif isinstance(node, list):
        for child in node:
            yield from env_references(child)


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume, or a path relative to the compose file)."""
    return {
        target: source for source, target, *_ in (item.split(":") for item in service["volumes"])
    }


def option(command: Sequence[str], *names: str) -> str:
    """The value after the first of ``names`` in a command given as a list."""
    index = next(i for i, word in enumerate(command) if word in names)
    return command[index + 1]


def config_content(compose: dict[str, Any], service: dict[str, Any], target: str) -> Any:
    """The parsed `configs` content that ``service`` mounts at ``target``."""
    source = next(item["source"] for item in service["configs"] if item["target"] == target)
    return yaml.safe_load(compose["configs"][source]["content"])


def test_compose_services_share_one_home_and_one_instance(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", *TALKVID_SERVICES}
    postgres = services["postgres"]["environment"]
    homes, storages = set(), set()
    for name in TALKVID_SERVICES:
        env, mounted = services[name]["environment"], mounts(services[name])
        instance_yaml = f"{env['DAGSTER_HOME']}/dagster.yaml"
        assert (COMPOSE.parent / mounted[instance_yaml]).resolve() == POSTGRES_INSTANCE, name
        assert env["TALKVID_INSTANCE_CONFIG"] == instance_yaml
        missing = set(env_references(yaml.safe_load(POSTGRES_INSTANCE.read_text()))) - set(env)
        assert not missing, f"{name} lacks what dagster-postgres.yaml reads: {missing}"
        assert env["PGHOST"] in services
        assert (env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"]) == (
            postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"],
        )  # fmt: skip
        homes.add(mounted[env["TALKVID_HOME"]])
        storages.add(mounted[f"{env['DAGSTER_HOME']}/storage"])
    # One volume each, declared: the home's tables, and the step logs the webserver shows.
    assert len(homes) == len(storages) == 1
    assert homes | storages <= set(compose["volumes"])


def test_compose_runs_and_workers_agree_on_celery(compose):
    services = compose["services"]
    code, worker = services["code"], services["worker"]
    assert executor_from_env(code["environment"]).name == "celery"
    assert worker["environment"][BROKER_ENV] == code["environment"][BROKER_ENV]
    assert urlparse(code["environment"][BROKER_ENV]).hostname in services
    command = worker["command"]
    assert command[:3] == ["dagster-celery", "worker", "start"]
    assert option(command, "--app", "-A") == "dagster_celery.app"
    worker_config = config_content(compose, worker, option(command, "--config-yaml", "-y"))
    assert worker_config == {"execution": {"config": celery_config(worker["environment"])}}


def test_compose_webserver_and_daemon_load_the_code_server(compose):
    services = compose["services"]
    code = services["code"]
    assert option(code["command"], "--module-name", "-m") == MODULE
    assert (COMPOSE.parent / code["build"]["context"]).resolve() == ROOT
    assert ROOT / code["build"]["dockerfile"] == DOCKERFILE
    for name in ("webserver", "daemon"):
        service = services[name]
        workspace = config_content(compose, service, option(service["command"], "--workspace"))
        server = workspace["load_from"][0]["grpc_server"]
        assert server["host"] == "code"
        assert str(server["port"]) == option(code["command"], "--port")
        assert server["location_name"] == option(code["command"], "--location-name")
    webserver = services["webserver"]
    published = {port.rsplit(":", 1)[1] for port in webserver["ports"]}
    assert published == {option(webserver["command"], "--port")}


def test_the_image_has_what_the_compose_file_expects(compose):
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"pip install .*\"\.\[scale\]\"", text)
    image_env = dict(re.findall(r"\b(DAGSTER_HOME|TALKVID_HOME)=(\S+)", text))
    code_env = compose["services"]["code"]["environment"]
    assert set(image_env) == {"DAGSTER_HOME", "TALKVID_HOME"}
    assert image_env == {key: code_env[key] for key in image_env}
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        assert all((ROOT / path).exists() for path in source.split()), source
    assert MODULE in text
    # the automation tick's settle delay (defs/automation.py) for the daemon in any container
    assert f"{TICK_SETTLE_ENV}={TICK_SETTLE_S}" in text


def compose_v2() -> str | None:
    """The docker binary when `docker compose` (Compose v2) works here, else None."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True)
    return docker if probe.returncode == 0 else None


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, RAY_COMPOSE]], ids=["base", "ray"])
def test_docker_compose_accepts_the_file(files):
    docker = compose_v2()
    if docker is None:
        reason = "`docker compose` (Compose v2) is not available here"
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    named = [word for path in files for word in ("-f", str(path))]
    result = subprocess.run(
        [docker, "compose", *named, "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_helm_values_use_only_keys_the_chart_knows(values):
    for path, known in CHART_KEYS.items():
        node = values
        for key in path:
            node = node.get(key, {})
        assert set(node) <= known, f"{'.'.join(path) or 'top level'}: {set(node) - known}"
    for deployment in values["dagster-user-deployments"]["deployments"]:
        assert set(deployment) <= USER_DEPLOYMENT_KEYS, set(deployment) - USER_DEPLOYMENT_KEYS


def test_helm_values_run_the_project_on_kubernetes(values):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagster-user-deployments"]["enabled"] is True
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", deployment["name"])
    image = deployment["image"]
    assert isinstance(image["tag"], str), "an unquoted tag like 1.10 reaches Helm as 1.1"
    assert image["repository"] and image["pullPolicy"] in {"Always", "IfNotPresent", "Never"}
    assert option(deployment["dagsterApiGrpcArgs"], "--module-name", "-m") == MODULE
    assert isinstance(deployment["port"], int)
    env = deployment["env"]
    assert executor_from_env(env).name == "k8s"
    volumes = {volume["name"] for volume in deployment["volumes"]}
    home = [
        mount for mount in deployment["volumeMounts"] if mount["mountPath"] == env["TALKVID_HOME"]
    ]
    assert len(home) == 1 and home[0]["name"] in volumes
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    # Only the model steps' op tags ask for a GPU; a limit here would put every pod on one.
    run_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    limits = run_config["containerConfig"]["resources"].get("limits", {})
    assert "nvidia.com/gpu" not in limits
    assert (
        "nvidia.com/gpu"
        in GPU_OP_TAGS["dagster-k8s/config"]["container_config"]["resources"]["limits"]
    )


def test_helm_instance_limits_are_those_of_the_postgres_instance(values):
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    concurrency = values["additionalInstanceConfig"]["concurrency"]
    # The instance the chart renders from these values (max_concurrent_runs -1 when unset).
    rendered = {
        "run_coordinator": {
            "module": "dagster",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": queued.get("maxConcurrentRuns", -1),
                "tag_concurrency_limits": queued.get("tagConcurrencyLimits", []),
            },
        },
        "concurrency": concurrency,
    }
    validate_concurrency_config(rendered)
    local = yaml.safe_load(POSTGRES_INSTANCE.read_text())["concurrency"]
    assert queued["maxConcurrentRuns"] == local["runs"]["max_concurrent_runs"]
    assert queued.get("tagConcurrencyLimits", []) == local["runs"].get("tag_concurrency_limits", [])
    assert concurrency["default_op_concurrency_limit"] == local["pools"]["default_limit"]


def commented_ray_env(text: str) -> dict[str, Any]:
    """The env lines values.yaml gives, commented out, for the KubeRay path."""
    lines = re.findall(r"^\s*# (TALKVID_[A-Z_]+: .+)$", text, re.M)
    return yaml.safe_load("\n".join(lines))


def test_compose_ray_override_joins_runs_and_ray_nodes(compose):
    ray = yaml.safe_load(RAY_COMPOSE.read_text())["services"]
    code_env = {**compose["services"]["code"]["environment"], **ray["code"]["environment"]}
    assert executor_from_env(code_env) is in_process_executor
    address = urlparse(code_env[RAY_ADDRESS_ENV])
    head, worker = ray["ray-head"], ray["ray-worker"]
    assert address.scheme == "ray" and address.hostname == "ray-head"
    assert f"--ray-client-server-port={address.port}" in head["command"]
    gcs = next(word for word in head["command"] if word.startswith("--port=")).split("=")[1]
    assert f"--address=ray-head:{gcs}" in worker["command"]
    home = code_env["TALKVID_HOME"]
    home_volume = mounts(compose["services"]["code"])[home]
    for node in (head, worker):
        assert node["command"][:2] == ["ray", "start"] and "--block" in node["command"]
        assert node["image"] == compose["services"]["code"]["image"]
        assert mounts(node)[home] == home_volume and node["environment"]["TALKVID_HOME"] == home


def test_kuberay_cluster_matches_the_user_deployment(values):
    deployment = values["dagster-user-deployments"]["deployments"][0]
    env = {**deployment["env"], **commented_ray_env(VALUES.read_text())}
    assert executor_from_env(env) is in_process_executor
    assert float(env[RAY_MODEL_GPUS_ENV]) > 0
    cluster = yaml.safe_load(RAYCLUSTER.read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert cluster["spec"]["rayVersion"] == RAY_PIN
    head = cluster["spec"]["headGroupSpec"]
    address = urlparse(env[RAY_ADDRESS_ENV])
    assert address.scheme == "ray"
    # KubeRay's Service for the head is <name>-head-svc; Ray Client listens on 10001 unless set.
    assert address.hostname == f"{cluster['metadata']['name']}-head-svc"
    client_port = int(head["rayStartParams"].get("ray-client-server-port", 10001))
    (head_container,) = head["template"]["spec"]["containers"]
    head_ports = {port["name"]: port["containerPort"] for port in head_container["ports"]}
    assert address.port == client_port == head_ports["client"]
    claim = next(
        volume["persistentVolumeClaim"]["claimName"]
        for volume in deployment["volumes"]
        if volume["name"] == "talkvid-home"
    )
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    groups = {"head": head, **{g["groupName"]: g for g in cluster["spec"]["workerGroupSpecs"]}}
    for name, group in groups.items():
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        # The run's image (a CUDA build of it on GPU nodes): same Ray, Python and talkvid code.
        assert container["image"].startswith(image), name
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        homes = [m for m in container["volumeMounts"] if m["mountPath"] == env["TALKVID_HOME"]]
        assert len(homes) == 1, name
        assert volumes[homes[0]["name"]]["persistentVolumeClaim"]["claimName"] == claim, name
        gpus = container["resources"].get("limits", {}).get("nvidia.com/gpu", 0)
        assert int(group["rayStartParams"].get("num-gpus", 0)) == gpus, name
    assert head["rayStartParams"]["num-cpus"] == "0", "the head decodes nothing"
    assert any(group["rayStartParams"].get("num-gpus") for group in groups.values())


def test_the_image_answers_kuberays_probes():
    """KubeRay probes a Ray pod with `bash -c "wget ... | grep success"`."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    assert re.search(r"apt-get install [^&]*\bwget\b", text)
