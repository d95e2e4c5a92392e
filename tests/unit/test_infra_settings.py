"""What infra/ gives the apps: every setting their bindings name, a user-assigned identity,
containers jobs may name, the GPU scorer's scale rule, grace period and roles, the blob drop's
Event Grid trigger and dead letters (the job data account: test_infra_data_account). Read from
the Bicep with test_infra_bicep's evaluator; the bindings come from loading the function apps
themselves."""

from __future__ import annotations

import importlib.util
import json
import re
from functools import cache
from typing import Any

import pytest
from test_infra_bicep import INFRA, MAIN, ROOT, Template, Unknown, resource_body

from batchfx.core.access import access_problem
from batchfx.core.settings import Settings
from batchfx.local.bindings import app_functions, load_app
from batchfx.services.blob_drops import EVENT_SUBJECT_SUFFIXES

GPU = {"deployGpuScorer": True}
TOKEN = {"resourceToken": "abcdefghijklm"}  # what uniqueString gives: 13 letters and digits
DATA = {"deployDataAccount": True, **TOKEN}
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


@cache
def main_bindings() -> tuple[tuple[str, dict[str, Any]], ...]:
    return tuple((fn.get_function_name(), b) for fn in app_functions(load_app())
                 for b in json.loads(fn.get_function_json())["bindings"])


@cache
def gpu_bindings() -> tuple[tuple[str, dict[str, Any]], ...]:
    spec = importlib.util.spec_from_file_location("gpu_function_app",
                                                  INFRA / "gpu" / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple((fn.get_function_name(), b) for fn in app_functions(module.app)
                 for b in json.loads(fn.get_function_json())["bindings"])


def main_settings(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The main app's app settings, as infra/ deploys them with ``params``."""
    app = Template(MAIN, params).resource("functionApp")
    return {s["name"]: s["value"] for s in app["properties"]["siteConfig"]["appSettings"]}


def gpu_app(params: dict[str, Any] | None = None) -> dict[str, Any]:
    return Template(MAIN, {**GPU, **(params or {})}).module("gpuScorer").resource("app")


def gpu_settings(params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The GPU scorer container's environment."""
    (container,) = gpu_app(params)["properties"]["template"]["containers"]
    return {e["name"]: e.get("value", e.get("secretRef")) for e in container["env"]}


def created_containers(params: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """The containers main.bicep creates with ``params``, per account: "main" (the app's own,
    AzureWebJobsStorage) and "data" (the job data account, empty without one)."""
    main = Template(MAIN, params)
    created = {"main": _account_containers(main), "data": []}
    if main.deployed("dataAccount"):
        data = main.module("dataAccount")
        assert data.resource("storage")["name"] == main.symbol("dataStorageAccountName")
        created["data"] = _account_containers(data)
    return created


def _account_containers(template: Template) -> list[Any]:
    """The names of the one container loop a template declares, under storage's blob service."""
    resources = template.json["resources"]
    (loop,) = [n for n, r in resources.items() if r["type"] == CONTAINER and not r["existing"]]
    service = resource_body(resources[loop])["parent"]
    assert resource_body(resources[service])["parent"] == "storage"
    assert template.deployed("storage") is True
    return template.loop_values(loop, "name")


def gpu_storage_roles(params: dict[str, Any] | None = None) -> dict[str, dict[str, list[Any]]]:
    """The GPU scorer's storage data roles per account ("main", "data"): the containers,
    queues and tables each role module names. Every one is scoped-storage-roles.bicep (roles
    on named containers, queues and tables, never the account), and the scorer's module
    grants no role itself."""
    main = Template(MAIN, {**GPU, **(params or {})})
    gpu = main.module("gpuScorer")
    accounts = {Unknown("storage.name"): "main", main.symbol("dataStorageAccountName"): "data"}
    roles: dict[str, dict[str, list[Any]]] = {}
    for name, module in gpu.json["modules"].items():
        deployed = gpu.deployed(name)
        assert deployed in (True, False), f"{name}: {deployed}"
        if module["detail"]["path"] == "acr-pull.bicep" or not deployed:
            continue
        assert module["detail"]["path"] == "scoped-storage-roles.bicep", name
        granted = gpu.module_params(name)
        account = accounts[granted["storageAccountName"]]
        assert account not in roles, f"two role modules on the {account} account"
        roles[account] = {key: list(granted.get(key, [])) for key in (
            "containerNames", "queueNames", "tableNames")}
    assert not [n for n, r in gpu.json["resources"].items()
                if r["type"] == "Microsoft.Authorization/roleAssignments"]
    return roles


def missing_settings(bindings: tuple[tuple[str, dict[str, Any]], ...],
                     settings: dict[str, Any]) -> list[str]:
    """Settings the bindings need that ``settings`` lacks: every %NAME% they name, and each
    storage connection (the host's own, the Durable task hub's, each binding's)."""
    host = json.loads((ROOT / "host.json").read_text())
    durable = host["extensions"].get("durableTask", {}).get("storageProvider", {}).get(
        "connectionName", "AzureWebJobsStorage")
    connections = {"AzureWebJobsStorage"}
    problems = []
    for function, binding in bindings:
        for value in binding.values():
            for name in re.findall(r"%([^%]+)%", value if isinstance(value, str) else ""):
                if name not in settings:
                    problems.append(f"{function}: %{name}% is not an app setting")
        if "connection" in binding:
            connections.add(binding["connection"])
        if binding["type"].startswith(("durable", "orchestration", "activity", "entity")):
            connections.add(durable)
    for connection in sorted(connections):
        problems += _connection_problems(connection, settings)
    return problems


def _connection_problems(name: str, settings: dict[str, Any]) -> list[str]:
    if name in settings:
        return []  # a connection string
    prefix = f"{name}__"
    if not any(f"{prefix}{key}" in settings for key in ("accountName", "serviceUri",
                                                        "blobServiceUri")):
        return [f"connection {name}: neither {name} nor {prefix}accountName is set"]
    problems = []
    if settings.get(f"{prefix}credential") != "managedidentity":
        problems.append(f"connection {name}: {prefix}credential is not managedidentity")
    if f"{prefix}clientId" not in settings:  # the apps have no system-assigned identity
        problems.append(f"connection {name}: {prefix}clientId (the user-assigned identity) "
                        "is not set")
    return problems


# --- settings the function code needs --------------------------------------------------------


@pytest.mark.parametrize("params", [{}, GPU, {"keyVaultName": "kv1"}], ids=str)
def test_every_setting_a_binding_names_is_set_on_the_main_app(params: dict[str, Any]) -> None:
    assert missing_settings(main_bindings(), main_settings(params)) == []


def test_every_setting_a_binding_names_is_set_on_the_gpu_scorer() -> None:
    assert missing_settings(gpu_bindings(), gpu_settings()) == []


@pytest.mark.parametrize("removed", ["BATCHFX_INBOX_CONTAINER", "BATCHFX_QUEUE_NAME",
                                     "AzureWebJobsStorage__clientId",
                                     "AzureWebJobsStorage__accountName"])
def test_a_missing_setting_is_found(removed: str) -> None:
    settings = {k: v for k, v in main_settings().items() if k != removed}
    assert any(removed.split("__")[0] in p for p in missing_settings(main_bindings(), settings))


def test_the_blob_drop_function_is_an_event_grid_blob_trigger() -> None:
    main = Template(MAIN, {"deployEventGridSubscription": True})
    function = main.symbol("blobDropFunctionName")
    (trigger,) = [b for f, b in main_bindings() if f == function and b["type"].endswith(
        "Trigger")]
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"  # Flex Consumption supports no other source
    assert trigger["path"].startswith("%BATCHFX_INBOX_CONTAINER%/")
    inbox = main_settings()["BATCHFX_INBOX_CONTAINER"]
    subscription = main.module("blobDropSubscription").resource("blobCreated")["properties"]
    assert subscription["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert subscription["filter"]["subjectBeginsWith"] == (
        f"/blobServices/default/containers/{inbox}/")
    (suffixes,) = subscription["filter"]["advancedFilters"]
    assert tuple(suffixes["values"]) == EVENT_SUBJECT_SUFFIXES
    url = subscription["destination"]["properties"]["endpointUrl"]
    assert f"/runtime/webhooks/blobs?functionName=Host.Functions.{function}&" in url.expression


# --- what jobs may name ----------------------------------------------------------------------


def _batchfx_settings(settings: dict[str, Any]) -> Settings:
    return Settings.from_env({k: v for k, v in settings.items() if isinstance(v, str)})


@pytest.mark.parametrize("data", [{}, DATA], ids=["one account", "data account"])
@pytest.mark.parametrize("settings", [main_settings, gpu_settings], ids=["main", "gpu"])
def test_jobs_may_name_the_data_containers_and_no_system_container(
        settings: Any, data: dict[str, Any]) -> None:
    values = settings({**GPU, "deployEventGridSubscription": True, **data})
    batchfx = _batchfx_settings(values)
    assert values["BATCHFX_ALLOWED_CONTAINERS"], "empty would allow every container"
    main = Template(MAIN, data)
    created = [c for names in created_containers(data).values() for c in names]
    hubs = {json.loads((ROOT / "host.json").read_text())["extensions"]["durableTask"][
        "hubName"], Template(MAIN, GPU).module("gpuScorer").symbol("durableHubName")}
    system = ["azure-webjobs-secrets", "azure-webjobs-hosts", "azure-webjobs-eventgrid",
              main.symbol("deadLetterContainerName"), "some-other-container",
              *[c for c in created if isinstance(c, str) and c.startswith("app-package-")],
              *[f"{hub}{suffix}" for hub in hubs for suffix in (
                  "-leases", "-largemessages", "-applease")]]
    for container in system:
        assert access_problem(batchfx, "inputs", container, "x") is not None, container
    for container in batchfx.allowed_containers:  # the setting itself names none of them
        assert container not in system and not container.startswith(
            ("azure-webjobs-", "app-package-")), container
    for container in (*batchfx.allowed_containers, batchfx.inbox_container,
                      batchfx.outputs_container):
        assert access_problem(batchfx, "inputs", container, "x") is None, container
        assert container in created, f"{container} is allowed but not created"


def test_the_data_containers_parameter_cannot_be_empty() -> None:
    decorators = Template(MAIN).json["parameters"]["dataContainerNames"]["decorators"]
    assert {"type": "min_length", "argument": 1} in decorators
    assert main_settings({"dataContainerNames": ["a", "b"]})[
        "BATCHFX_ALLOWED_CONTAINERS"] == "a,b"


# --- identities ------------------------------------------------------------------------------


def test_the_main_app_runs_as_its_user_assigned_identity() -> None:
    main = Template(MAIN)
    app = main.resource("functionApp")
    identity = Unknown("functionAppIdentity.id")
    assert app["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    settings = main_settings()
    client_id = Unknown("functionAppIdentity.properties.clientId")
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == client_id
    assert settings["AZURE_CLIENT_ID"] == client_id  # batchfx's DefaultAzureCredential
    authentication = app["properties"]["functionAppConfig"]["deployment"]["storage"][
        "authentication"]
    assert authentication == {"type": "UserAssignedIdentity",
                              "userAssignedIdentityResourceId": identity}
    roles = main.module_params("functionAppStorageRoles")
    assert roles["principalId"] == Unknown("functionAppIdentity.properties.principalId")
    assert "functionAppStorageRoles" in main.json["resources"]["functionApp"]["config"][
        "dependsOn"], "the roles must exist before the app reads its package"


def test_the_key_vault_role_goes_to_both_identities() -> None:
    main = Template(MAIN, {"keyVaultName": "kv1", **GPU})
    principals = {main.resource(name)["properties"]["principalId"]
                  for name in ("keyVaultSecretsUser", "gpuKeyVaultSecretsUser")}
    assert principals == {Unknown("functionAppIdentity.properties.principalId"),
                          Unknown("gpuScorer.outputs.principalId")}


# --- the GPU scorer --------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["batchfx-minibatches", "other-queue"])
def test_the_gpu_scorer_scales_on_the_queue_with_its_identity(queue: str) -> None:
    app = gpu_app({"queueName": queue})
    settings = gpu_settings({"queueName": queue})
    scale = app["properties"]["template"]["scale"]
    assert scale["allowScalingRuleOverride"] is True  # else user rules are blocked
    (rule,) = scale["rules"]
    (identity,) = app["identity"]["userAssignedIdentities"]
    assert app["identity"]["type"] == "UserAssigned"
    assert rule["custom"]["type"] == "azure-queue"
    assert rule["custom"]["identity"] == identity
    assert "auth" not in rule["custom"], "no secrets: the identity reads the queue"
    metadata = rule["custom"]["metadata"]
    assert metadata["queueName"] == settings["BATCHFX_QUEUE_NAME"] == queue
    assert metadata["accountName"] == settings["AzureWebJobsStorage__accountName"]
    assert int(metadata["queueLength"]) >= 1


@pytest.mark.parametrize(("params", "run_timeout", "margin"), [
    ({}, 60, 60),
    ({"gpuRunInvocationTimeoutSeconds": 300, "leaseMarginSeconds": 90}, 300, 90),
    ({"gpuTerminationGracePeriodSeconds": 10}, 60, 60),  # too short: raised to the floor
])
def test_the_gpu_grace_period_covers_a_run_and_the_lease_margin(
        params: dict[str, Any], run_timeout: int, margin: int) -> None:
    # The host drains on SIGTERM (no new message; invocations under way end): a script
    # process may hold one mini-batch running and the next one staged, two runs in a row.
    grace = gpu_app(params)["properties"]["template"]["terminationGracePeriodSeconds"]
    assert grace >= 2 * run_timeout + margin
    settings = gpu_settings(params)
    assert settings["BATCHFX_LEASE_MARGIN_S"] == str(margin)
    assert settings["FUNCTIONS_ENABLE_DRAIN_ON_APP_STOPPING"] == "true"


@pytest.mark.parametrize("params", [{}, DATA], ids=["one account", "data account"])
def test_the_gpu_scorer_holds_roles_on_what_it_uses_only(params: dict[str, Any]) -> None:
    main = Template(MAIN, {**GPU, **params})
    roles = gpu_storage_roles(params)
    batchfx = _batchfx_settings(gpu_settings(params))
    used = {batchfx.jobs_container, batchfx.inbox_container, batchfx.outputs_container,
            *batchfx.allowed_containers, "azure-webjobs-hosts"}
    assert {c for account in roles.values() for c in account["containerNames"]} == used
    created = created_containers({**GPU, **params})
    for account, granted in roles.items():  # and each one in the account it is created in
        assert set(granted["containerNames"]) <= set(created[account]), account
    assert roles["main"]["queueNames"] == [batchfx.queue_name, batchfx.poison_queue_name]
    assert roles["main"]["tableNames"] == [batchfx.jobs_table, batchfx.minibatches_table]
    assert set(roles["main"]["queueNames"]) == set(main.symbol("queueNames"))
    assert set(roles["main"]["tableNames"]) == set(main.symbol("tableNames"))
    assert set(roles) == ({"main", "data"} if params else {"main"})
    settings = gpu_settings(params)
    assert settings["AzureWebJobsSecretStorageType"] == "containerapp"  # not the keys' blobs


def test_the_scorers_container_roles_are_scoped_to_each_container() -> None:
    roles = Template(INFRA / "modules" / "scoped-storage-roles.bicep")
    body = resource_body(roles.json["resources"]["containerRoles"])
    scope = body["scope"]["operator"]
    assert scope["type"] == "index_accessor"  # containers[i], not the account
    assert roles.resource_type(scope["operands"]["operand_1"]) == CONTAINER
    assert BLOB_DATA_CONTRIBUTOR in roles.resource("containerRoles")["properties"][
        "roleDefinitionId"].expression


# --- Event Grid dead letters -----------------------------------------------------------------


def test_the_blob_drop_subscription_dead_letters_to_a_container() -> None:
    main = Template(MAIN, {"deployEventGridSubscription": True})
    subscription = main.module("blobDropSubscription").resource("blobCreated")["properties"]
    dead_letter = subscription["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    destination = dead_letter["deadLetterDestination"]
    container = main.symbol("deadLetterContainerName")
    assert destination == {"endpointType": "StorageBlob", "properties": {
        "resourceId": Unknown("storage.id"), "blobContainerName": container}}
    assert container in main.symbol("containerNames")
    assert main.resource("systemTopic")["identity"] == {"type": "SystemAssigned"}
    roles = main.module_params("deadLetterRoles")
    assert roles["principalId"] == Unknown("systemTopic.identity.principalId")
    assert roles["containerNames"] == [container]


# --- a second storage account for job data (deployDataAccount) --------------------------------
