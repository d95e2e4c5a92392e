"""infra/'s job data account (deployDataAccount): hardened like the app's account, named
apart from it, given to both apps by name, holding the job data and only it, with the GPU
scorer's roles on its containers alone; switched off, nothing moves. Read from the Bicep with
test_infra_bicep's evaluator (helpers shared with test_infra_settings)."""

from __future__ import annotations

import re

import pytest
from test_infra_bicep import MAIN, Template, Unknown, resource_body
from test_infra_settings import (
    BLOB_DATA_CONTRIBUTOR,
    DATA,
    GPU,
    TOKEN,
    _batchfx_settings,
    created_containers,
    gpu_settings,
    gpu_storage_roles,
    main_settings,
)

from batchfx.core.settings import Settings


@pytest.mark.parametrize("shared_key", [True, False])
def test_the_data_account_is_hardened_like_the_apps_account(shared_key: bool) -> None:
    main = Template(MAIN, {**DATA, "allowSharedKeyAccess": shared_key})
    assert main.deployed("dataAccount") is True
    data = main.module("dataAccount")
    account, own = data.resource("storage"), main.resource("storage")
    assert data.resource_type("storage") == main.resource_type("storage")
    for key in ("kind", "sku", "location", "tags", "properties"):
        assert account[key] == own[key], key
    assert account["kind"] == "StorageV2"
    assert account["properties"]["allowSharedKeyAccess"] is shared_key
    assert account["properties"]["minimumTlsVersion"] == "TLS1_2"
    assert account["properties"]["allowBlobPublicAccess"] is False
    assert account["properties"]["supportsHttpsTrafficOnly"] is True
    assert all(p == {"publicAccess": "None"} for p in data.loop_values("containers",
                                                                        "properties"))


@pytest.mark.parametrize("prefix", ["batchfx", "my-batch-app", "abcdefghijkl"])
def test_the_data_account_is_named_like_the_apps_account_and_apart_from_it(prefix: str) -> None:
    main = Template(MAIN, {**DATA, "namePrefix": prefix})
    own, data = main.symbol("storageAccountName"), main.symbol("dataStorageAccountName")
    assert own != data
    for name in (own, data):
        assert re.fullmatch(r"[a-z0-9]{3,24}", name), name
    assert Settings.from_env({"BATCHFX_DATA_ACCOUNT": data}).data_account == data


def test_both_apps_are_given_the_data_account_by_name() -> None:
    main = Template(MAIN, {**DATA, **GPU})
    name = main.module("dataAccount").resource("storage")["name"]
    for settings in (main_settings({**DATA, **GPU}), gpu_settings(DATA)):
        assert settings["BATCHFX_DATA_ACCOUNT"] == name
        assert "BATCHFX_DATA_CONNECTION_STRING" not in settings  # the identity, not a key
        batchfx = _batchfx_settings(settings)
        assert batchfx.data_account == name and batchfx.separate_data
        assert settings["AZURE_CLIENT_ID"] == settings["AzureWebJobsStorage__clientId"]
        assert settings["BATCHFX_ALLOWED_CONTAINERS"] == main_settings()[
            "BATCHFX_ALLOWED_CONTAINERS"]  # the same data containers as without
    assert main.value(main.json["outputs"]["dataStorageAccountName"]["value"]) == name


@pytest.mark.parametrize("data_containers", [["data"], ["images", "results"],
                                             ["images", "inbox", "batchfx"]], ids=str)
def test_job_data_is_in_the_data_account_and_only_there(data_containers: list[str]) -> None:
    params = {**DATA, "dataContainerNames": data_containers}
    batchfx = _batchfx_settings(main_settings(params))
    created = created_containers(params)
    named = {batchfx.jobs_container, batchfx.inbox_container, batchfx.outputs_container,
             *batchfx.allowed_containers}
    # Where batchfx looks for each: every container but the app's own in the data account.
    data = {c for c in named if not batchfx.is_app_container(c)}
    assert batchfx.outputs_container in data
    assert set(created["data"]) == data
    assert not data & set(created["main"]), "a job data container in the app's account"
    main = Template(MAIN, params)
    assert {batchfx.jobs_container, batchfx.inbox_container, "azure-webjobs-hosts",
            main.symbol("deadLetterContainerName")} <= set(created["main"])
    assert all(batchfx.is_app_container(c) or c.startswith("app-package-")
               or c == main.symbol("deadLetterContainerName") for c in created["main"])


def test_with_a_data_account_the_gpu_scorer_holds_no_role_on_the_apps_data_containers() -> None:
    batchfx = _batchfx_settings(gpu_settings(DATA))
    roles = gpu_storage_roles(DATA)
    data = {batchfx.outputs_container, *batchfx.allowed_containers}
    assert not data & set(roles["main"]["containerNames"])
    # On the app's account: batchfx's container, the inbox (blob drops' inputs) and the
    # host's locks, the app's own all three.
    assert set(roles["main"]["containerNames"]) == {
        batchfx.jobs_container, batchfx.inbox_container, "azure-webjobs-hosts"}
    assert all(batchfx.is_app_container(c) for c in roles["main"]["containerNames"])
    # On the data account: its containers, one by one (not the account), and nothing else.
    assert roles["data"] == {"containerNames": created_containers(DATA)["data"],
                             "queueNames": [], "tableNames": []}


@pytest.mark.parametrize("user", ["", "0000-1111"], ids=["no user", "user"])
def test_with_a_data_account_the_main_app_and_the_user_hold_blob_roles_on_it(user: str) -> None:
    main = Template(MAIN, {**DATA, "principalId": user})
    data = main.module("dataAccount")
    app = {"principalId": Unknown("functionAppIdentity.properties.principalId"),
           "principalType": "ServicePrincipal"}
    assert data.symbol("blobContributors") == [app] + (
        [{"principalId": user, "principalType": "User"}] if user else [])
    role = data.resource("blobContributorRoles")
    assert role["scope"] == Unknown("storage")  # the data account, whole
    assert BLOB_DATA_CONTRIBUTOR in role["properties"]["roleDefinitionId"].expression
    assert role["properties"]["principalId"] == Unknown("contributor.principalId")
    # The main app keeps its roles on its own account, and starts once both are granted.
    assert main.module_params("functionAppStorageRoles")["storageAccountName"] == Unknown(
        "storage.name")
    assert {"functionAppStorageRoles", "dataAccount"} <= set(
        main.json["resources"]["functionApp"]["config"]["dependsOn"])
    assert "dataAccount" in resource_body(main.json["modules"]["gpuScorer"])["dependsOn"]


def test_without_a_data_account_nothing_moves() -> None:
    main = Template(MAIN, {**GPU, **TOKEN})
    assert main.deployed("dataAccount") is False
    for settings in (main_settings({**GPU, **TOKEN}), gpu_settings(TOKEN)):
        assert not [k for k in settings if k.startswith("BATCHFX_DATA_")]
        assert not _batchfx_settings(settings).separate_data
    assert created_containers({**GPU, **TOKEN}) == {"main": [
        "batchfx", "inbox", "outputs", "data", "app-package-abcdefghijklm",
        "azure-webjobs-hosts", "eventgrid-deadletter"], "data": []}
    assert gpu_storage_roles(TOKEN) == {"main": {
        "containerNames": ["batchfx", "inbox", "outputs", "data", "azure-webjobs-hosts"],
        "queueNames": ["batchfx-minibatches", "batchfx-minibatches-poison"],
        "tableNames": ["batchfxjobs", "batchfxminibatches"]}}
    assert main.value(main.json["outputs"]["dataStorageAccountName"]["value"]) == ""
