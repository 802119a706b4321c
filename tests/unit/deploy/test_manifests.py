"""The Dockerfile, Compose and Kubernetes files are valid, safe, and agree with the config."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from eventwire import config
from eventwire.config import ServerConfig
from eventwire.runtime.server import LIVENESS
from eventwire.store.postgres import PostgresStore
from tests.support.deploy import DEPLOY, compose, eventwire_services
from tests.support.paths import ROOT

CONFIG_ENV = {config.ENV_PREFIX + f.name.upper() for f in dataclasses.fields(ServerConfig)}

PLACEHOLDER_STORE = "postgresql://eventwire:secret@postgres:5432/eventwire"


def config_from_env(env: Mapping[str, str]) -> ServerConfig:
    """The config ``eventwire serve`` would build from ``env`` (and no flags)."""
    unknown = {k for k in env if k.startswith(config.ENV_PREFIX)} - CONFIG_ENV
    assert not unknown, f"not eventwire config fields: {sorted(unknown)}"
    parser = argparse.ArgumentParser(exit_on_error=False)
    config.add_arguments(parser, env)
    return config.from_namespace(parser.parse_args([]))


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def dockerfile() -> list[list[tuple[str, str]]]:
    """Stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = [[]]
    for line in logical:
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def docker_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in stage:
        if instruction == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_is_multi_stage_slim_and_runs_as_a_numeric_non_root_user() -> None:
    preamble, *stages = dockerfile()
    assert len(stages) >= 2, "build tools must stay out of the final image"
    args = dict(a.partition("=")[::2] for i, a in preamble if i == "ARG")
    final = stages[-1]
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final[0][1])
    assert "slim" in base or "distroless" in base, base
    assert "AS" not in base.upper().split()[1:], "the final stage is the runtime one"
    users = [a for i, a in final if i == "USER"]
    assert users, "the final stage must switch away from root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so Kubernetes' runAsNonRoot can verify it"
    assert int(uid) != 0
    copies = [a for i, a in final if i == "COPY"]
    assert copies
    assert all(a.startswith("--from=") for a in copies), "only built artefacts are copied in"


def test_dockerfile_installs_only_hashed_locked_files() -> None:
    runs = " && ".join(a for stage in dockerfile() for i, a in stage if i == "RUN")
    installs = [c.strip() for c in runs.split("&&") if "pip install" in c]
    assert installs
    for command in installs:
        # Either the hashed lock (or its server part), or our own freshly built
        # wheel, installed as the server (its extra, whose closure the lock holds).
        assert "--no-deps" in command, command
        wheel = re.search(r'"\$\(ls /tmp/dist/eventwire-\*\.whl\)\[server\]"$', command)
        assert "--require-hashes" in command or wheel, command
    assert "runtime_requirements.py" in runs
    assert "--no-build-isolation" in runs, "build isolation would fetch unpinned hatchling"


def test_dockerfile_defaults_are_valid_config_and_ports_are_exposed() -> None:
    final = dockerfile()[-1]
    env = docker_env(final)
    cfg = config_from_env(env)
    assert cfg.log_format == "json"
    exposed = {int(p.split("/")[0]) for i, a in final if i == "EXPOSE" for p in a.split()}
    assert port_of(cfg.address) in exposed
    for optional in (cfg.http_address, cfg.metrics_address):
        if optional:
            assert port_of(optional) in exposed
    (entrypoint,) = [a for i, a in final if i == "ENTRYPOINT"]
    assert entrypoint.startswith("["), "exec form, so eventwire is PID 1 and gets SIGTERM"
    assert yaml.safe_load(entrypoint) == ["eventwire", "serve"]


def _locked_closure(*, client: bool) -> set[str]:
    spec = importlib.util.spec_from_file_location(
        "runtime_requirements", DEPLOY / "runtime_requirements.py"
    )
    assert spec is not None
    assert spec.loader is not None
    runtime_requirements = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runtime_requirements)
    return set(
        runtime_requirements.closure(
            (ROOT / "requirements.lock").read_text(),
            (ROOT / "pyproject.toml").read_text(),
            client=client,
        )
    )


def _declared_closure(extras: frozenset[str]) -> set[str]:
    """What the installed eventwire really requires with ``extras``, transitively."""
    needed: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [("eventwire", extras)]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, wanted = todo.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for requirement in importlib.metadata.requires(name) or []:
            req = Requirement(requirement)
            envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(e) for e in envs):
                needed.add(re.sub(r"[-_.]+", "-", req.name).lower())
                todo.append((req.name, frozenset(req.extras)))
    return needed


@pytest.mark.parametrize(("client", "extras"), [(False, {"server"}), (True, set())])
def test_runtime_lock_is_exactly_what_eventwire_needs_at_run_time(
    client: bool, extras: set[str]
) -> None:
    chosen = _locked_closure(client=client)
    assert chosen == _declared_closure(frozenset(extras))
    assert not chosen & {"mypy", "pytest", "ruff", "hatchling", "grpcio-tools"}
    if client:
        assert not chosen & {"psycopg", "uvicorn", "httptools", "rich", "opentelemetry-sdk"}


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the defaults."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_compose_runs_postgres_and_three_replicas_on_it() -> None:
    services = compose()["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    replicas = eventwire_services()
    assert len(replicas) >= 3
    host_ports = []
    for name, svc in replicas.items():
        env = {k: interpolate(str(v)) for k, v in svc["environment"].items()}
        cfg = config_from_env(env)
        assert cfg.store.startswith("postgresql://"), name
        assert "@postgres:5432/" in cfg.store, "the compose postgres service"
        PostgresStore(cfg.store)  # a URL the store accepts, our parameters included
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        grace = float(svc["stop_grace_period"].removesuffix("s"))
        assert grace > cfg.grace, "Docker must not SIGKILL a draining replica"
        targets = {int(p.split(":")[-1]) for p in svc["ports"]}
        assert port_of(cfg.address) in targets
        host_ports += [p.rsplit(":", 1)[0] for p in svc["ports"]]
        assert svc.get("read_only") is True
    assert len(host_ports) == len(set(host_ports)), "each replica publishes its own ports"


def k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs[doc["kind"]] = doc
    return docs


def container() -> dict[str, Any]:
    (c,) = k8s()["Deployment"]["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = c
    return result


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = k8s()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    return labels


def selects_pods(selector: Mapping[str, str]) -> bool:
    return bool(selector) and all(pod_labels().get(k) == v for k, v in selector.items())


def k8s_env() -> dict[str, str]:
    env = {}
    for var in container()["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            assert var["valueFrom"]["secretKeyRef"]["name"]
            env[var["name"]] = PLACEHOLDER_STORE
    return env


def test_k8s_deployment_env_is_valid_config_with_the_store_from_a_secret() -> None:
    cfg = config_from_env(k8s_env())
    assert cfg.log_format == "json"
    (store,) = [v for v in container()["env"] if v["name"] == "EVENTWIRE_STORE"]
    assert "secretKeyRef" in store["valueFrom"], "credentials never sit in the manifest"
    assert not container()["image"].endswith(":latest")


def test_k8s_probes_use_grpc_health_on_the_probe_port() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    cfg = config_from_env(k8s_env())
    assert ports["grpc"] == port_of(cfg.address)
    assert ports["http"] == port_of(cfg.http_address)
    assert ports["metrics"] == port_of(cfg.metrics_address)
    annotations = k8s()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    # The probe port (--health-port): floods of the grpc port's health checks
    # do not delay the kubelet's.
    assert ports["health"] == cfg.health_port != 0
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["grpc"]["port"] == ports["health"], probe
    ready, live = c["readinessProbe"], c["livenessProbe"]
    # Not ready quickly; dead only after long: a database outage is not fixed by restarts.
    assert ready["periodSeconds"] * ready["failureThreshold"] <= 10
    assert live["periodSeconds"] * live["failureThreshold"] >= 60
    assert live["grpc"]["service"] == LIVENESS


def test_k8s_shutdown_drains_within_the_grace_period() -> None:
    pod = k8s()["Deployment"]["spec"]["template"]["spec"]
    pre_stop = container()["lifecycle"]["preStop"]
    command = pre_stop["exec"]["command"] if "exec" in pre_stop else []
    sleep = float(command[1]) if command[:1] == ["sleep"] else pre_stop["sleep"]["seconds"]
    assert sleep > 0
    grace = config_from_env(k8s_env()).grace
    assert pod["terminationGracePeriodSeconds"] >= sleep + grace + 5


def test_k8s_pod_is_non_root_with_resource_requests() -> None:
    pod = k8s()["Deployment"]["spec"]["template"]["spec"]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] != 0
    c = container()
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= c["resources"]["requests"].keys()
    assert "memory" in c["resources"]["limits"]


def test_k8s_headless_service_and_pdb_select_the_pods() -> None:
    docs = k8s()
    deployment = docs["Deployment"]["spec"]
    assert selects_pods(deployment["selector"]["matchLabels"])
    assert deployment["replicas"] >= 3

    service = docs["Service"]["spec"]
    assert service["clusterIP"] == "None", "headless: clients balance per pod"
    assert selects_pods(service["selector"])
    named = {p["name"] for p in container()["ports"]}
    grpc_ports = [p for p in service["ports"] if p.get("appProtocol") == "grpc"]
    assert grpc_ports
    assert all(p["targetPort"] in named for p in service["ports"])

    pdb = docs["PodDisruptionBudget"]["spec"]
    assert selects_pods(pdb["selector"]["matchLabels"])
    if "maxUnavailable" in pdb:
        assert 0 < pdb["maxUnavailable"] < deployment["replicas"]
    else:
        assert 0 < pdb["minAvailable"] < deployment["replicas"]


@pytest.mark.parametrize(
    "path", [*sorted((DEPLOY / "k8s").glob("*.yaml")), DEPLOY / "compose.yaml"]
)
def test_deployment_files_are_plain_yaml(path: Path) -> None:
    assert "\t" not in path.read_text(), "YAML forbids tabs for indentation"
    assert list(yaml.safe_load_all(path.read_text()))


def test_k8s_kustomization_applies_every_manifest() -> None:
    kustomization = k8s()["Kustomization"]
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    (image,) = kustomization["images"]
    assert container()["image"].startswith(image["name"] + ":")
