"""The Kubernetes manifests in ``deploy/kubernetes`` against the code that uses them.

The RBAC rules are derived from ``bot/sources/kubernetes.py`` (and any other module of the
bot that imports the ``kubernetes`` client): every attribute that names a method of a
``kubernetes.client`` API class is an API call, mapped to (apiGroup, resource, verb) by the
explicit table below. A method missing from the table fails the test, so a new call cannot
reach production without a decision about its permission; the Role and ClusterRole must
then grant exactly the union, nothing more.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import kubernetes.client
import pytest
import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
SOURCE = ROOT / "bot" / "sources" / "kubernetes.py"
NAMESPACE = "streamhouse"
BOT = "streamhouse-bot"

Scope = Literal["namespaced", "cluster"]
Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

# method -> (scope, permissions). ``None`` as group/resource: taken from the call's
# constant arguments (custom objects: group, version, [namespace,] plural).
PERMISSIONS: dict[str, tuple[Scope, tuple[tuple[str | None, str | None, str], ...]]] = {
    "list_namespaced_pod": ("namespaced", (("", "pods", "list"),)),
    "read_namespaced_pod_log": ("namespaced", (("", "pods/log", "get"),)),
    # WebSocket exec: an HTTP GET ("get"); API servers >= 1.35 also check "create".
    "connect_get_namespaced_pod_exec": (
        "namespaced",
        (("", "pods/exec", "get"), ("", "pods/exec", "create")),
    ),
    "list_namespaced_event": ("namespaced", (("", "events", "list"),)),
    "read_namespaced_config_map": ("namespaced", (("", "configmaps", "get"),)),
    "list_namespaced_persistent_volume_claim": (
        "namespaced",
        (("", "persistentvolumeclaims", "list"),),
    ),
    "read_namespaced_deployment": ("namespaced", (("apps", "deployments", "get"),)),
    "read_namespaced_stateful_set": ("namespaced", (("apps", "statefulsets", "get"),)),
    # bot/sources/kubernetes_actions.py: CB-A2's rollout restart of the agent workload.
    "patch_namespaced_deployment": ("namespaced", (("apps", "deployments", "patch"),)),
    "patch_namespaced_stateful_set": ("namespaced", (("apps", "statefulsets", "patch"),)),
    # The remediations (bot/sources/kubernetes_actions.py): scale the agents (TH-A3,
    # LC-A3, RP-A2), restart one agent pod (LC-A2), grow a WAL claim (RP-A3).
    "patch_namespaced_deployment_scale": ("namespaced", (("apps", "deployments/scale", "patch"),)),
    "patch_namespaced_stateful_set_scale": (
        "namespaced",
        (("apps", "statefulsets/scale", "patch"),),
    ),
    "delete_namespaced_pod": ("namespaced", (("", "pods", "delete"),)),
    "patch_namespaced_persistent_volume_claim": (
        "namespaced",
        (("", "persistentvolumeclaims", "patch"),),
    ),
    "list_namespaced_replica_set": ("namespaced", (("apps", "replicasets", "list"),)),
    "list_namespaced_controller_revision": (
        "namespaced",
        (("apps", "controllerrevisions", "list"),),
    ),
    "list_namespaced_custom_object": ("namespaced", ((None, None, "list"),)),
    "get_namespaced_custom_object": ("namespaced", ((None, None, "get"),)),
    "list_node": ("cluster", (("", "nodes", "list"),)),
    "connect_get_node_proxy_with_path": ("cluster", (("", "nodes/proxy", "get"),)),
    "read_storage_class": ("cluster", (("storage.k8s.io", "storageclasses", "get"),)),
}

# Secrets of the public contract that are not Settings fields (boto3 reads them itself).
AWS_SECRETS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}


# -- deriving the permissions from the code ---------------------------------------------------
def _api_method_names() -> frozenset[str]:
    """Every public method of every ``kubernetes.client`` API class (``CoreV1Api``, ...)."""
    names: set[str] = set()
    # The package loads its classes lazily: ``dir`` + ``getattr``, not ``vars``.
    for class_name in dir(kubernetes.client):
        cls = getattr(kubernetes.client, class_name)
        if class_name.endswith("Api") and inspect.isclass(cls) and class_name != "ApiClient":
            members = vars(cls)
            # A generated endpoint method comes with its ``*_with_http_info`` twin (which
            # leaves out helpers such as ``close``); the twins are endpoints too.
            names.update(
                name
                for name in members
                if f"{name}_with_http_info" in members or name.endswith("_with_http_info")
            )
    return frozenset(names)


def _imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return []


def _client_modules() -> list[Path]:
    """``bot/sources/kubernetes.py`` plus any other bot module importing the client."""
    found = {SOURCE}
    for path in (ROOT / "bot").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = _imported_modules(node)
            if any(name == "kubernetes" or name.startswith("kubernetes.") for name in modules):
                found.add(path)
    return sorted(found)


def _calls(path: Path) -> Iterator[tuple[str, list[ast.expr], int]]:
    """(method, the arguments that follow it, line) for every API method the module uses.

    Methods are called directly (``api.list_node()``) or handed to a wrapper
    (``self._call(what, api.list_node, ...)``, ``stream(api.connect_..., ...)``).
    """
    api_methods = _api_method_names()
    tree = ast.parse(path.read_text(), str(path))
    seen: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in api_methods:
            seen.add(id(node.func))
            yield node.func.attr, list(node.args), node.lineno
        for index, arg in enumerate(node.args):
            if isinstance(arg, ast.Attribute) and arg.attr in api_methods:
                seen.add(id(arg))
                yield arg.attr, list(node.args[index + 1 :]), node.lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in api_methods and id(node) not in seen:
            # Stored or passed some other way: still a use, but arguments are unknown.
            yield node.attr, [], node.lineno


def _constant(args: list[ast.expr], index: int, method: str, line: int) -> str:
    if index < len(args):
        value = args[index]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    pytest.fail(
        f"line {line}: {method} needs a constant string argument #{index} (after the "
        "method) so the test can tell which API group and resource it reads"
    )


def derived_permissions() -> dict[Scope, set[Permission]]:
    """The permissions the code needs, per scope, from the ``PERMISSIONS`` table."""
    needed: dict[Scope, set[Permission]] = {"namespaced": set(), "cluster": set()}
    unknown: list[str] = []
    for path in _client_modules():
        for method, args, line in _calls(path):
            if method not in PERMISSIONS:
                unknown.append(f"{path.relative_to(ROOT)}:{line}: {method}")
                continue
            scope, permissions = PERMISSIONS[method]
            for group, resource, verb in permissions:
                if group is None or resource is None:  # custom objects
                    plural_at = 3 if scope == "namespaced" else 2
                    group = _constant(args, 0, method, line)
                    resource = _constant(args, plural_at, method, line)
                needed[scope].add((group, resource, verb))
    assert not unknown, (
        "the code calls Kubernetes API methods the RBAC table in tests/deploy/test_rbac.py "
        "does not know; add each to PERMISSIONS with its (apiGroup, resource, verb) and "
        "grant it in deploy/kubernetes/role.yaml or clusterrole.yaml:\n  " + "\n  ".join(unknown)
    )
    return needed


# -- the manifests -----------------------------------------------------------------------------
def _load(name: str) -> dict[str, Any]:
    documents = [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]
    assert len(documents) == 1, f"{name}: expected one document, found {len(documents)}"
    document = documents[0]
    assert isinstance(document, dict)
    return document


def granted(document: dict[str, Any]) -> set[Permission]:
    """Every (apiGroup, resource, verb) a Role or ClusterRole grants, with no wildcards."""
    permissions: set[Permission] = set()
    for rule in document.get("rules") or []:
        assert "nonResourceURLs" not in rule, f"{rule}: no non-resource URLs are needed"
        groups, resources, verbs = rule["apiGroups"], rule["resources"], rule["verbs"]
        for value in (*groups, *resources, *verbs):
            assert "*" not in value, f"{document['kind']}: wildcard {value!r} in {rule}"
        permissions.update((g, r, v) for g in groups for r in resources for v in verbs)
    return permissions


def _container() -> dict[str, Any]:
    containers = _load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


# -- tests -------------------------------------------------------------------------------------
def test_every_manifest_parses() -> None:
    files = sorted(MANIFESTS.glob("*.yaml"))
    assert {path.name for path in files} >= {
        "serviceaccount.yaml",
        "role.yaml",
        "rolebinding.yaml",
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "deployment.yaml",
        "service.yaml",
        "secret.template.yaml",
    }
    for path in files:
        document = _load(path.name)
        assert {"apiVersion", "kind", "metadata"} <= document.keys(), path.name
        if document["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert document["metadata"].get("namespace") == NAMESPACE, path.name


def test_the_code_uses_kubernetes_api_methods() -> None:
    # Guards the detector itself: if it found nothing, the equality below would be vacuous.
    methods = {method for method, _, _ in _calls(SOURCE)}
    assert {"list_namespaced_pod", "list_node", "read_namespaced_pod_log"} <= methods


def test_role_grants_exactly_what_the_namespaced_calls_need() -> None:
    role = _load("role.yaml")
    assert role["kind"] == "Role"
    needed, have = derived_permissions()["namespaced"], granted(role)
    assert not needed - have, f"role.yaml is missing {sorted(needed - have)}"
    assert not have - needed, f"role.yaml grants more than the code uses: {sorted(have - needed)}"


def test_cluster_role_grants_exactly_what_the_cluster_calls_need() -> None:
    role = _load("clusterrole.yaml")
    assert role["kind"] == "ClusterRole"
    needed, have = derived_permissions()["cluster"], granted(role)
    assert not needed - have, f"clusterrole.yaml is missing {sorted(needed - have)}"
    assert not have - needed, (
        f"clusterrole.yaml grants more than the code uses: {sorted(have - needed)}"
    )


@pytest.mark.parametrize(
    ("binding", "role_kind"),
    [("rolebinding.yaml", "Role"), ("clusterrolebinding.yaml", "ClusterRole")],
)
def test_bindings_give_the_roles_to_the_bot_service_account(binding: str, role_kind: str) -> None:
    document = _load(binding)
    assert document["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": role_kind,
        "name": BOT,
    }
    assert document["subjects"] == [{"kind": "ServiceAccount", "name": BOT, "namespace": NAMESPACE}]
    account = _load("serviceaccount.yaml")
    assert (account["kind"], account["metadata"]["name"]) == ("ServiceAccount", BOT)


def test_deployment_runs_as_non_root_with_probes() -> None:
    deployment = _load("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    container = _container()
    assert pod["serviceAccountName"] == BOT
    assert container["image"] == "streamhouse-bot:latest"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 3000}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert ports.get(http["port"], http["port"]) == 3000, probe
    assert {"requests", "limits"} <= container["resources"].keys()


def test_bot_data_dir_is_a_writable_volume() -> None:
    container = _container()
    env = {item["name"]: item.get("value") for item in container["env"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    assert env["BOT_DATA_DIR"] in mounts
    volumes = _load("deployment.yaml")["spec"]["template"]["spec"]["volumes"]
    by_name = {volume["name"]: volume for volume in volumes}
    assert "emptyDir" in by_name[mounts[env["BOT_DATA_DIR"]]]
    # A secret never travels as a plain env value.
    assert not set(env) & _contract_secrets()


def test_service_exposes_the_bot_port() -> None:
    service = _load("service.yaml")
    assert (
        service["spec"]["selector"] == _load("deployment.yaml")["spec"]["selector"]["matchLabels"]
    )
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(3000, "http")]


def _contract_secrets() -> set[str]:
    """Every ``SecretStr`` setting of the public contract, plus boto3's credentials."""
    fields = Settings.model_fields.items()
    secret = {name.upper() for name, field in fields if "SecretStr" in str(field.annotation)}
    return secret | AWS_SECRETS


def test_secret_template_lists_every_secret_of_the_contract() -> None:
    secret = _load("secret.template.yaml")
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", BOT)
    keys = set(secret["stringData"])
    expected = _contract_secrets()
    assert expected >= {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "BOT_DATABASE_URL",
        "STREAMHOUSE_DATABASE_URL",
        "BOT_ALERTMANAGER_TOKEN",
    }
    assert keys == expected, f"missing {expected - keys}, unexpected {keys - expected}"
    assert all("REPLACE-ME" in str(value) for value in secret["stringData"].values())
    sources = [item["secretRef"]["name"] for item in _container()["envFrom"]]
    assert sources == [BOT]
