"""The Kubernetes manifests, offline: each object against the API schemas (kubernetes-validate), and
the facts that tie them together and to the server (ports, probes, grace periods, the metric).

What no schema here covers: prometheus-adapter's rules (a Helm values file, checked for shape and for
naming the server's metric) and whatever a live cluster decides (admission, the adapter's query).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.test_container import image_settings
from tts_api.ipc.counters import METRICS
from tts_api.settings import Settings
from tts_api.shutdown import stop_budget_s

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
# The oldest Kubernetes still in common support and the newest the validator knows.
VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((K8S / name).read_text())
    assert isinstance(document, dict)
    return document


def resources() -> list[str]:
    names = load("kustomization.yaml")["resources"]
    assert isinstance(names, list)
    return [str(name) for name in names]


def objects() -> dict[str, dict[str, Any]]:
    """kind -> object, for every manifest the kustomization applies."""
    return {(document := load(name))["kind"]: document for name in resources()}


def container() -> dict[str, Any]:
    (only,) = objects()["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def env() -> dict[str, str]:
    return {e["name"]: e["value"] for e in container()["env"] if "value" in e}


def quantity(value: str) -> float:
    """A Kubernetes quantity such as `700m` or `0.7` as a number."""
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def test_the_kustomization_applies_every_manifest() -> None:
    not_objects = {"kustomization.yaml", "prometheus-adapter.values.yaml"}
    assert sorted(resources()) == sorted(p.name for p in K8S.glob("*.yaml") if p.name not in not_objects)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", resources())
def test_each_manifest_is_a_valid_kubernetes_object(name: str, version: str) -> None:
    # strict: an unknown (misspelt) field is an error too, as `kubectl apply --validate=strict` makes it.
    kubernetes_validate.validate(load(name), version, strict=True)


def test_every_tts_variable_is_a_server_setting() -> None:
    names = [e["name"] for e in container()["env"]]
    fields = {f"TTS_{name.upper()}" for name in Settings.model_fields}
    assert [n for n in names if n not in fields] == []


def test_probes_ask_the_servers_health_on_its_port() -> None:
    spec = container()
    (port,) = spec["ports"]
    assert port["containerPort"] == int(env()["TTS_PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/health", "port": port["name"]}
    startup = spec["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, "room for a first model build"


def test_termination_grace_covers_the_prestop_and_the_whole_stop() -> None:
    """The kubelet kills what is left after `terminationGracePeriodSeconds`, counted from the preStop
    hook: it must cover the hook, the drain and every process's stop after it (shutdown.stop_budget_s),
    with the settings the pod runs with (the image's, then the manifest's)."""
    pod = objects()["Deployment"]["spec"]["template"]["spec"]
    sleep_s = int(container()["lifecycle"]["preStop"]["exec"]["command"][-1])
    settings = image_settings(**env())
    assert settings.drain_grace_s == float(env()["TTS_DRAIN_GRACE_S"])
    budget_s = sleep_s + stop_budget_s(settings)
    assert pod["terminationGracePeriodSeconds"] >= budget_s, (pod["terminationGracePeriodSeconds"], budget_s)


def test_torch_threads_match_the_cpu_the_pod_gets() -> None:
    resources = container()["resources"]
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"]
    assert int(env()["TTS_TORCH_THREADS"]) == int(resources["requests"]["cpu"])


def test_service_pdb_and_hpa_point_at_the_deployment() -> None:
    found = objects()
    deployment = found["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert found["Service"]["spec"]["selector"] == selector
    assert found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    (port,) = found["Service"]["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]
    target = found["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"


def test_the_hpa_scales_on_the_load_gauge_the_adapter_serves() -> None:
    spec = objects()["HorizontalPodAutoscaler"]["spec"]
    (metric,) = spec["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert METRICS[name][0] == "gauge", "the server exports it"
    assert 0 < quantity(metric["pods"]["target"]["averageValue"]) < 1, "scale before overload"
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]

    (rule,) = load("prometheus-adapter.values.yaml")["rules"]["custom"]
    assert rule["name"]["as"] == name
    assert rule["seriesQuery"].startswith(f"{name}{{")
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]


def test_prometheus_scrapes_the_port_the_server_listens_on() -> None:
    annotations = objects()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == env()["TTS_PORT"]
    assert annotations["prometheus.io/path"] == "/metrics"
