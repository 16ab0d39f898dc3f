"""deploy/k8s: every overlay renders, passes kubernetes-validate --strict, and is wired to the real service.

The rendered objects are read back and checked against tests/deploy/deploy_contract.py:
probes on real paths, HPA and adapter on a real metric, the restricted
security context, resources, the PodDisruptionBudget, drain timings.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from .deploy_contract import (
    DEVICES,
    DTYPES,
    ENDPOINTS,
    GAUGE,
    HEALTH_PATH,
    LIVE_PATH,
    METRICS,
    METRICS_PATH,
    OPERATOR_TARGET_LABELS,
    REPO,
    SETTINGS,
    promql_refs,
)
from .deploy_util import K8S, OVERLAYS, dockerfile_instructions, final_stage, find, run

Objs = list[dict[str, Any]]
Render = Callable[[Path], Objs]

# kubectl 1.32 ships with these machines; 1.30 is the oldest release the
# manifests target (native preStop sleep); the newest schema bundled too.
K8S_VERSIONS = ("1.30.0", "1.32.0", "1.37.0")

# Kinds kubernetes-validate has no schema for, checked by SERVICEMONITOR_SCHEMA below.
CRD_KINDS = {"ServiceMonitor"}


# --- helpers -------------------------------------------------------------------


def container(objs: Objs) -> dict[str, Any]:
    pod = find(objs, "Deployment", "attnserve")["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "attnserve"]
    result: dict[str, Any] = c
    return result


def pod_spec(objs: Objs) -> dict[str, Any]:
    spec: dict[str, Any] = find(objs, "Deployment", "attnserve")["spec"]["template"]["spec"]
    return spec


def settings(objs: Objs) -> dict[str, str]:
    """The ConfigMap the container takes its environment from (through envFrom)."""
    c = container(objs)
    refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
    assert len(refs) == 1, "the container should take its settings from one ConfigMap"
    data: dict[str, str] = find(objs, "ConfigMap", refs[0])["data"]
    for env in c.get("env", []):
        if "value" in env:
            data[env["name"]] = env["value"]
    return data


def quantity(value: str | int) -> float:
    """Kubernetes quantity -> float (cpu in cores, memory in bytes)."""
    s = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda kv: -len(kv[0])):
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    return float(s)


def kubernetes_validate_strict(tool: str, objs: Objs, version: str, tmp_path: Path) -> tuple[int, str]:
    path = tmp_path / f"rendered-{version}.yaml"
    path.write_text(yaml.safe_dump_all(objs, sort_keys=False))
    proc = run([tool, "--strict", "-k", version, str(path)])
    return proc.returncode, proc.stdout + proc.stderr


def assert_validates(tool: str, objs: Objs, version: str, tmp_path: Path) -> None:
    rc, out = kubernetes_validate_strict(tool, objs, version, tmp_path)
    assert rc == 0 and "ERROR" not in out, out
    for line in out.splitlines():
        if line.startswith("WARN"):
            assert any(f"kind {kind} " in line for kind in CRD_KINDS), f"unexpected warning: {line}"
    passed = len([line for line in out.splitlines() if line.startswith("INFO") and "passed" in line])
    assert passed == len([o for o in objs if o["kind"] not in CRD_KINDS]), out


def http_get_path(probe: dict[str, Any]) -> str:
    assert "httpGet" in probe, f"probe should be an HTTP GET: {probe}"
    return str(probe["httpGet"]["path"])


def named_port(c: dict[str, Any], name: str) -> int:
    (port,) = [p["containerPort"] for p in c["ports"] if p.get("name") == name]
    return int(port)


# --- rendering and schema validation ----------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_overlay_passes_kubernetes_validate_strict(
    rendered: Objs, kubernetes_validate: str, version: str, tmp_path: Path
) -> None:
    assert_validates(kubernetes_validate, rendered, version, tmp_path)


def test_base_renders_and_validates(kustomize: Render, kubernetes_validate: str, tmp_path: Path) -> None:
    assert_validates(kubernetes_validate, kustomize(K8S / "base"), "1.32.0", tmp_path)


def test_strict_validation_catches_a_misspelt_field(
    rendered: Objs, kubernetes_validate: str, tmp_path: Path
) -> None:
    """The validator is not a no-op: one typo in the Deployment fails it."""
    broken = copy.deepcopy(rendered)
    probe = container(broken)["readinessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    rc, out = kubernetes_validate_strict(kubernetes_validate, broken, "1.32.0", tmp_path)
    assert rc != 0 and "ERROR" in out, out


@pytest.mark.parametrize("overlay_name", OVERLAYS)
def test_overlay_with_optional_components(
    kubectl: str, kubernetes_validate: str, overlay_name: str, tmp_path: Path
) -> None:
    """The overlay plus the ingress and models-pvc components, as deploy/README.md shows."""
    here = tmp_path / "with-components"
    here.mkdir()
    rel = Path(os.path.relpath(K8S, here))
    (here / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [str(rel / "overlays" / overlay_name)],
                "components": [str(rel / "components" / "ingress"), str(rel / "components" / "models-pvc")],
            }
        )
    )
    proc = run([kubectl, "kustomize", str(here)])
    assert proc.returncode == 0, proc.stderr
    objs = [o for o in yaml.safe_load_all(proc.stdout) if o]
    assert_validates(kubernetes_validate, objs, "1.32.0", tmp_path)

    namespace = find(objs, "Namespace")["metadata"]["name"]
    for o in objs:
        if o["kind"] != "Namespace":
            assert o["metadata"].get("namespace") == namespace, f"{o['kind']} outside {namespace}"

    ingress = find(objs, "Ingress", "attnserve")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # SSE events flow at once
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 600
    service = find(objs, "Service", "attnserve")
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"].get("name") in port_names or backend["port"].get("number") in {
                p["port"] for p in service["spec"]["ports"]
            }

    mounts = {m["mountPath"]: m for m in container(objs)["volumeMounts"]}
    assert mounts["/models"].get("readOnly") is True
    volumes = {v["name"]: v for v in pod_spec(objs)["volumes"]}
    claim = volumes[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"]
    find(objs, "PersistentVolumeClaim", claim)


# --- the Deployment ----------------------------------------------------------------


def test_probes_point_at_real_endpoints(rendered: Objs) -> None:
    c = container(rendered)
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert kind in c, f"{kind} missing"
        assert http_get_path(c[kind]) in ENDPOINTS
        assert c[kind]["httpGet"]["port"] in ("http", named_port(c, "http"))
    assert http_get_path(c["startupProbe"]) == HEALTH_PATH
    assert http_get_path(c["readinessProbe"]) == HEALTH_PATH
    # Liveness must not restart a pod that is merely busy or draining.
    assert http_get_path(c["livenessProbe"]) == LIVE_PATH


def test_startup_probe_leaves_time_for_model_loading(rendered: Objs, overlay: str) -> None:
    startup = container(rendered)["startupProbe"]
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget >= {"cpu": 300, "gpu": 600}[overlay], f"startup budget only {budget}s"
    # Liveness only starts after the startup probe succeeded.
    assert container(rendered)["livenessProbe"].get("initialDelaySeconds", 0) <= 30


def test_container_port_matches_settings_and_service(rendered: Objs) -> None:
    c = container(rendered)
    env = settings(rendered)
    port = named_port(c, "http")
    assert port == int(env.get("ATTNSERVE_PORT", 8000))
    assert env.get("ATTNSERVE_HOST") == "0.0.0.0"  # reachable from outside the pod
    service = find(rendered, "Service", "attnserve")
    (svc_port,) = [p for p in service["spec"]["ports"] if p["name"] == "http"]
    assert svc_port["targetPort"] in ("http", port)
    labels = find(rendered, "Deployment", "attnserve")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_settings_configmap_names_only_real_settings(rendered: Objs, overlay: str) -> None:
    env = settings(rendered)
    unknown = {k for k in env if k.startswith("ATTNSERVE_")} - SETTINGS
    assert not unknown, f"not settings of the app: {unknown}"
    assert env["ATTNSERVE_DEVICE"] in DEVICES
    assert env["ATTNSERVE_DTYPE"] in DTYPES
    assert env["ATTNSERVE_DEVICE"] == {"cpu": "cpu", "gpu": "cuda"}[overlay]
    assert "ATTNSERVE_API_KEY" not in env, "a secret does not belong in a ConfigMap"
    for key in ("ATTNSERVE_MAX_BATCH_SIZE", "ATTNSERVE_MAX_QUEUE_SIZE", "ATTNSERVE_DRAIN_TIMEOUT_S"):
        assert int(env[key]) > 0


def test_graceful_shutdown_timings(rendered: Objs) -> None:
    """preStop pause + the server's drain must fit in the grace period, or SIGKILL cuts streams."""
    spec = pod_spec(rendered)
    pre_stop = container(rendered)["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        pause = int(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert "sleep" in command[0] or "sleep" in " ".join(command)
        pause = int(re.findall(r"\d+", " ".join(command))[-1])
    assert pause >= 3, "give endpoints and load balancers time to drop the pod"
    drain = float(settings(rendered)["ATTNSERVE_DRAIN_TIMEOUT_S"])
    grace = spec["terminationGracePeriodSeconds"]
    assert grace > pause + drain, f"terminationGracePeriodSeconds {grace} <= preStop {pause} + drain {drain}"


def test_restricted_security_context(rendered: Objs) -> None:
    spec = pod_spec(rendered)
    pod_sc = spec["securityContext"]
    c = container(rendered)
    sc = c["securityContext"]
    assert pod_sc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True
    assert (sc.get("runAsUser") or pod_sc.get("runAsUser")) not in (None, 0)
    assert "RuntimeDefault" in (
        sc.get("seccompProfile", {}).get("type"),
        pod_sc.get("seccompProfile", {}).get("type"),
    )
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert not sc["capabilities"].get("add")
    assert not sc.get("privileged", False)
    assert spec.get("hostNetwork") is not True and spec.get("hostPID") is not True
    assert spec.get("automountServiceAccountToken") is False
    # Pod Security Admission enforces "restricted" on the namespace.
    namespace = find(rendered, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_user_matches_the_image(rendered: Objs) -> None:
    user = dict(final_stage(dockerfile_instructions()))["USER"]
    uid, _, gid = user.partition(":")
    sc = {**pod_spec(rendered)["securityContext"], **container(rendered)["securityContext"]}
    assert str(sc["runAsUser"]) == uid
    if gid:
        assert str(sc["runAsGroup"]) == gid


def test_writable_paths_are_emptydirs(rendered: Objs) -> None:
    """With a read-only root filesystem, /tmp and the cache directories need volumes."""
    env = dict(
        kv.split("=", 1)
        for word, rest in final_stage(dockerfile_instructions())
        if word == "ENV"
        for kv in rest.split()
    )
    needed = {"/tmp", env["XDG_CACHE_HOME"]}
    mounts = {m["mountPath"]: m["name"] for m in container(rendered)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(rendered)["volumes"]}
    for path in needed:
        assert path in mounts, f"{path} is not writable"
        assert "emptyDir" in volumes[mounts[path]]
        assert volumes[mounts[path]]["emptyDir"].get("sizeLimit"), f"{path}: bound its size"
    assert env["TRITON_CACHE_DIR"].startswith(env["XDG_CACHE_HOME"])


def test_resources(rendered: Objs, overlay: str) -> None:
    res = container(rendered)["resources"]
    for key in ("cpu", "memory"):
        assert key in res["requests"], f"requests.{key} missing"
        assert key in res["limits"], f"limits.{key} missing"
        assert quantity(res["limits"][key]) >= quantity(res["requests"][key])
    gpus = res["limits"].get("nvidia.com/gpu")
    if overlay == "gpu":
        assert gpus is not None and int(gpus) >= 1
        spec = pod_spec(rendered)
        assert spec.get("nodeSelector") or spec.get("affinity"), "schedule onto GPU nodes"
        assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", []))
    else:
        assert gpus is None
        threads = settings(rendered).get("ATTNSERVE_TORCH_THREADS")
        if threads is not None:
            assert int(threads) <= quantity(res["limits"]["cpu"])


def test_image_variant(rendered: Objs, overlay: str) -> None:
    image = container(rendered)["image"]
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    assert {"cpu": "cpu", "gpu": "cuda"}[overlay] in tag, image
    assert tag != "latest"


def test_rollout_keeps_capacity(rendered: Objs) -> None:
    deployment = find(rendered, "Deployment", "attnserve")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    update = deployment["spec"]["strategy"]["rollingUpdate"]
    hpa = find(rendered, "HorizontalPodAutoscaler", "attnserve")
    # Never more pods down than the minimum leaves serving.
    assert int(update["maxUnavailable"]) < hpa["spec"]["minReplicas"]


def test_pod_disruption_budget(rendered: Objs) -> None:
    pdb = find(rendered, "PodDisruptionBudget", "attnserve")
    labels = find(rendered, "Deployment", "attnserve")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = find(rendered, "HorizontalPodAutoscaler", "attnserve")
    spec = pdb["spec"]
    if "maxUnavailable" in spec:
        assert 0 < int(spec["maxUnavailable"]) < hpa["spec"]["minReplicas"]
    else:
        assert 0 < int(spec["minAvailable"]) < hpa["spec"]["minReplicas"], "drains would block forever"


# --- autoscaling and monitoring -----------------------------------------------------


def test_hpa_scales_on_queue_size_per_pod(rendered: Objs) -> None:
    hpa = find(rendered, "HorizontalPodAutoscaler", "attnserve")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "attnserve")
    find(rendered, target["kind"], target["name"])
    assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert name == "attnserve_queue_size"
    assert METRICS[name][0] == GAUGE
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert quantity(metric["pods"]["target"]["averageValue"]) > 0
    # Slow scale-down: a new pod costs a model load.
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 120


def adapter_rules() -> list[dict[str, Any]]:
    config = yaml.safe_load((K8S / "prometheus-adapter" / "config.yaml").read_text())
    return list(config["rules"])


def test_prometheus_adapter_serves_the_hpa_metric(rendered: Objs) -> None:
    hpa = find(rendered, "HorizontalPodAutoscaler", "attnserve")
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    served: set[str] = set()
    for rule in adapter_rules():
        names, labels = promql_refs(rule["seriesQuery"])
        assert names <= set(METRICS), f"seriesQuery names unknown metrics: {names - set(METRICS)}"
        assert {"namespace", "pod"} <= labels
        overrides = rule["resources"]["overrides"]
        assert overrides["namespace"]["resource"] == "namespace"
        assert overrides["pod"]["resource"] == "pod"
        (series,) = names
        assert re.fullmatch(rule["name"]["matches"], series)
        served.add(re.sub(rule["name"]["matches"], rule["name"].get("as", "$0"), series))
        for token in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
            assert token in rule["metricsQuery"]
    assert wanted <= served, f"no adapter rule serves {wanted - served}"


def test_prometheus_adapter_configmap_and_helm_values_agree(kustomize: Render) -> None:
    objs = kustomize(K8S / "prometheus-adapter")
    cm = find(objs, "ConfigMap")
    assert yaml.safe_load(cm["data"]["config.yaml"])["rules"] == adapter_rules()
    values = yaml.safe_load((K8S / "prometheus-adapter" / "helm-values.yaml").read_text())
    assert values["rules"]["custom"] == adapter_rules()


def test_prometheus_adapter_configmap_validates(
    kustomize: Render, kubernetes_validate: str, tmp_path: Path
) -> None:
    assert_validates(kubernetes_validate, kustomize(K8S / "prometheus-adapter"), "1.32.0", tmp_path)


# A strict subset of the Prometheus Operator's ServiceMonitor CRD schema
# (monitoring.coreos.com/v1): kubernetes-validate has no schema for CRDs.
# Unknown fields are rejected, as --strict does for built-in kinds.
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": _LABELS,
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}
_RELABEL = {"type": "array", "items": {"type": "object"}}
SERVICEMONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "namespace": {"type": "string"},
                "labels": _LABELS,
                "annotations": _LABELS,
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array"}},
                },
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "targetLimit": {"type": "integer", "minimum": 0},
                "attachMetadata": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "params": {"type": "object"},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "relabelings": _RELABEL,
                            "metricRelabelings": _RELABEL,
                            "followRedirects": {"type": "boolean"},
                            "enableHttp2": {"type": "boolean"},
                            "filterRunning": {"type": "boolean"},
                            "authorization": {"type": "object"},
                            "basicAuth": {"type": "object"},
                            "bearerTokenSecret": {"type": "object"},
                            "tlsConfig": {"type": "object"},
                            "proxyUrl": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}


def test_servicemonitor(rendered: Objs) -> None:
    monitor = find(rendered, "ServiceMonitor", "attnserve")
    jsonschema.validate(monitor, SERVICEMONITOR_SCHEMA)
    service = find(rendered, "Service", "attnserve")
    assert monitor["metadata"].get("namespace") == service["metadata"]["namespace"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports
    assert endpoint.get("path", "/metrics") == METRICS_PATH
    # A metric label that is also an operator target label gets renamed to
    # exported_<label> unless the scrape honours the service's labels.
    clashes = {label for _kind, labels in METRICS.values() for label in labels} & OPERATOR_TARGET_LABELS
    if clashes:
        assert endpoint.get("honorLabels") is True, f"metric labels {clashes} would become exported_*"


def test_servicemonitor_schema_rejects_unknown_fields(rendered: Objs) -> None:
    monitor = copy.deepcopy(find(rendered, "ServiceMonitor", "attnserve"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, SERVICEMONITOR_SCHEMA)


def test_no_object_is_left_unvalidated(rendered: Objs) -> None:
    kinds = {o["kind"] for o in rendered}
    assert kinds - CRD_KINDS >= {
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert json.dumps(rendered)  # plain data, nothing YAML-specific left


def test_readme_commands_name_existing_overlays() -> None:
    readme = (REPO / "deploy" / "README.md").read_text()
    for path in re.findall(r"kubectl apply -k ([^\s`]+)", readme):
        assert (REPO / path / "kustomization.yaml").is_file(), path
    assert "kubectl apply -k deploy/k8s/overlays/gpu" in readme
    assert "docker compose up" in readme
