"""deploy/k8s against the Kubernetes API schemas (kubernetes-validate), and KEDA's objects by structure."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tools import DEPLOY

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
# KEDA's and the RabbitMQ operator's CRDs are not in kubernetes-validate's schemas; their tests check fields by hand.
KEDA_KINDS = {"ScaledObject", "TriggerAuthentication", "RabbitmqCluster"}
CONSUMER_QUEUES = {"diagnosis": "diagnosis.cancellations", "outreach": "outreach.diagnoses"}
PORTS = {"intake": 8000, "diagnosis": 8001, "outreach": 8002}


def documents() -> list[tuple[Path, dict]]:
    return [
        (path, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _path, doc in documents() if doc["kind"] == kind}


@pytest.mark.parametrize(
    "path, doc",
    [(p, d) for p, d in documents() if d["kind"] not in KEDA_KINDS],
    ids=lambda value: value.name if isinstance(value, Path) else value["kind"],
)
def test_manifest_matches_the_kubernetes_schema(path: Path, doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_rejects_an_unknown_field() -> None:
    deployment = of_kind("Deployment")["intake"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == present


@pytest.mark.parametrize("name", sorted(PORTS))
def test_deployment_is_probed_limited_and_non_root(name: str) -> None:
    spec = of_kind("Deployment")[name]["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["command"] == ["python", "-m", f"services.{name}"]
    assert container["ports"] == [{"name": "http", "containerPort": PORTS[name]}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory"} <= set(container["resources"]["limits"]) & set(container["resources"]["requests"])
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"configMapRef": {"name": "brink-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "brink-secrets"}} in container["envFrom"]
    services = of_kind("Service")
    assert services[name]["spec"]["ports"][0]["port"] == PORTS[name]
    assert services[f"{name}-pods"]["spec"]["clusterIP"] == "None"


def test_migration_job_runs_brink_migrate_as_non_root() -> None:
    job = of_kind("Job")["brink-migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["brink", "migrate"]
    assert job["securityContext"]["runAsNonRoot"] is True


def test_config_map_keys_are_settings_brink_reads() -> None:
    from shared.settings import BrinkSettings

    known = {f"BRINK_{field.upper()}" for field in BrinkSettings.model_fields}
    assert set(of_kind("ConfigMap")["brink-config"]["data"]) <= known


@pytest.mark.parametrize("name", sorted(CONSUMER_QUEUES))
def test_keda_scales_each_consumer_on_its_queue_depth(name: str) -> None:
    scaled = of_kind("ScaledObject")[name]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] in of_kind("Deployment")
    assert spec["scaleTargetRef"]["name"] == name
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"] == {
        "protocol": "amqp",
        "queueName": CONSUMER_QUEUES[name],
        "mode": "QueueLength",
        "value": trigger["metadata"]["value"],
    }
    assert int(trigger["metadata"]["value"]) > 0
    assert trigger["authenticationRef"]["name"] in of_kind("TriggerAuthentication")


def test_keda_authentication_reads_the_broker_url_from_the_secret() -> None:
    [auth] = of_kind("TriggerAuthentication").values()
    [ref] = auth["spec"]["secretTargetRef"]
    secret = of_kind("Secret")[ref["name"]]
    # KEDA takes one address: the RabbitMQ cluster's Service, not Brink's node list.
    assert ref["parameter"] == "host" and ref["key"] in secret["stringData"] and ref["key"] == "RABBITMQ_SERVICE_URL"
    cluster = of_kind("RabbitmqCluster")["rabbitmq"]
    assert (
        f"@{cluster['metadata']['name']}.{cluster['metadata']['namespace']}:5672/" in secret["stringData"][ref["key"]]
    )


def test_the_rabbitmq_cluster_has_three_nodes_that_pause_in_a_minority() -> None:
    cluster = of_kind("RabbitmqCluster")["rabbitmq"]
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert cluster["spec"]["replicas"] == 3
    config = dict(
        line.split(" = ", 1) for line in cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines() if line.strip()
    )
    assert config["cluster_partition_handling"] == "pause_minority"
    [term] = cluster["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_brink_lists_every_node_of_the_rabbitmq_cluster() -> None:
    from shared.amqp_cluster import node_urls

    cluster = of_kind("RabbitmqCluster")["rabbitmq"]
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    nodes = node_urls(of_kind("Secret")["brink-secrets"]["stringData"]["BRINK_AMQP_URL"])
    # The operator names its pods <name>-server-N behind the headless Service <name>-nodes.
    expected = [f"{name}-server-{n}.{name}-nodes.{namespace}:5672" for n in range(cluster["spec"]["replicas"])]
    assert [node.split("@", 1)[1].rstrip("/") for node in nodes] == expected


@pytest.mark.parametrize("name", sorted(PORTS))
def test_each_service_runs_two_replicas_apart_with_a_disruption_budget(name: str) -> None:
    deployment = of_kind("Deployment")[name]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["replicas"] >= 2
    scaled = of_kind("ScaledObject").get(name)
    if scaled is not None:  # KEDA owns the replica count of the consumers
        assert scaled["spec"]["minReplicaCount"] >= 2
    [preferred] = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert preferred["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert preferred["podAffinityTerm"]["labelSelector"]["matchLabels"] == labels
    budget = of_kind("PodDisruptionBudget")[name]
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert budget["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
