"""Property names in infra/'s Bicep, checked against the Azure management SDKs' models.

Each resource body (``properties`` and the top-level keys, recursively wherever the model
says what a value holds) must use names the resource type's REST model declares, and never a
read-only one. The SDKs describe a recent API version, not necessarily the one a resource
names: this catches misspelt and misplaced names, not a property too new for its version.
Values that are expressions are followed through variables, conditionals (both branches),
union/concat and map's lambda; anything else is not looked into.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_infra_bicep import INFRA, bicep_files, parse, resource_body

# Resource type -> (models module, model of the PUT body). Chosen to cover what infra/ deploys
# with few, small SDKs (dev extra in pyproject.toml).
CHECKED: dict[str, tuple[str, str]] = {
    "Microsoft.Storage/storageAccounts": ("azure.mgmt.storage.models",
                                          "StorageAccountCreateParameters"),
    "Microsoft.Storage/storageAccounts/blobServices": ("azure.mgmt.storage.models",
                                                       "BlobServiceProperties"),
    "Microsoft.Storage/storageAccounts/blobServices/containers": ("azure.mgmt.storage.models",
                                                                  "BlobContainer"),
    "Microsoft.Storage/storageAccounts/queueServices": ("azure.mgmt.storage.models",
                                                        "QueueServiceProperties"),
    "Microsoft.Storage/storageAccounts/queueServices/queues": ("azure.mgmt.storage.models",
                                                               "StorageQueue"),
    "Microsoft.Storage/storageAccounts/tableServices": ("azure.mgmt.storage.models",
                                                        "TableServiceProperties"),
    "Microsoft.Storage/storageAccounts/tableServices/tables": ("azure.mgmt.storage.models",
                                                               "Table"),
    "Microsoft.Web/serverfarms": ("azure.mgmt.web.models", "AppServicePlan"),
    "Microsoft.Web/sites": ("azure.mgmt.web.models", "Site"),
    "Microsoft.App/managedEnvironments": ("azure.mgmt.appcontainers.models",
                                          "ManagedEnvironment"),
    "Microsoft.App/containerApps": ("azure.mgmt.appcontainers.models", "ContainerApp"),
    "Microsoft.EventGrid/systemTopics": ("azure.mgmt.eventgrid.models", "SystemTopic"),
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": ("azure.mgmt.eventgrid.models",
                                                            "EventSubscription"),
    "Microsoft.ManagedIdentity/userAssignedIdentities": ("azure.mgmt.msi.models", "Identity"),
    "Microsoft.Authorization/roleAssignments": (
        "azure.mgmt.authorization.v2022_04_01.models", "RoleAssignmentCreateParameters"),
}
# Resource types infra/ uses whose names are NOT checked, and why.
NOT_CHECKED: dict[str, str] = {
    "Microsoft.OperationalInsights/workspaces": "azure-mgmt-loganalytics left out of dev",
    "Microsoft.Insights/components": "azure-mgmt-applicationinsights left out of dev",
    "Microsoft.KeyVault/vaults": "only referenced (existing), no body",
    "Microsoft.ContainerRegistry/registries": "only referenced (existing), no body",
}
# Bicep's own keys on a resource, not part of the REST body.
BICEP_KEYS = {"name", "parent", "scope", "dependsOn"}


@dataclass
class Shape:
    """What a JSON value may hold: an object's fields, a list's items, a map's values."""

    model: str = ""
    fields: dict[str, Shape] = field(default_factory=dict)
    readonly: set[str] = field(default_factory=set)
    items: Shape | None = None  # a list or a map: the shape of each value
    variants: dict[str, tuple[str, Any]] = field(default_factory=dict)  # key -> (value, cls)


LEAF = Shape()


def _unescaped_split(key: str) -> list[str]:
    return [part.replace("\\.", ".") for part in re.split(r"(?<!\\)\.", key)]


def _msrest_shape(cls: type, module: types.ModuleType) -> Shape:
    shape = Shape(model=cls.__name__)
    validation = getattr(cls, "_validation", {})
    for attr, info in cls._attribute_map.items():  # type: ignore[attr-defined]
        *parents, last = _unescaped_split(info["key"])
        node = shape
        for parent in parents:
            node = node.fields.setdefault(parent, Shape(model=f"{cls.__name__}.{parent}"))
        node.fields[last] = _msrest_type(info["type"], module)
        if validation.get(attr, {}).get("readonly"):
            node.readonly.add(last)
    for attr, subtypes in getattr(cls, "_subtype_map", {}).items():
        key = cls._attribute_map[attr]["key"]  # type: ignore[attr-defined]
        shape.variants = {value: (key, getattr(module, name)) for value, name in subtypes.items()}
    return shape


def _msrest_type(text: str, module: types.ModuleType) -> Shape:
    if text.startswith("[") or text.startswith("{"):
        return Shape(items=_msrest_type(text[1:-1], module))
    model = getattr(module, text, None)
    return _shape(model) if isinstance(model, type) else LEAF


def _typespec_shape(cls: type, module: types.ModuleType) -> Shape:
    cls()  # the SDK fills _attr_to_rest_field on the first instance
    hints = typing.get_type_hints(cls, globalns={**vars(sys.modules[cls.__module__]),
                                                 "_models": module})
    shape = Shape(model=cls.__name__)
    for attr, rest in cls._attr_to_rest_field.items():  # type: ignore[attr-defined]
        shape.fields[rest._rest_name] = _typespec_type(hints.get(attr))
        if rest._visibility == ["read"]:
            shape.readonly.add(rest._rest_name)
    mapping = getattr(cls, "__mapping__", None)
    discriminator = next((r for r in cls._attr_to_rest_field.values()  # type: ignore[attr-defined]
                          if r._is_discriminator), None)
    if mapping and discriminator is not None:
        shape.variants = {value: (discriminator._rest_name, sub)
                          for value, sub in mapping.items() if sub is not cls}
    return shape


def _typespec_type(hint: Any) -> Shape:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if _is_typespec_model(a)
                  or typing.get_origin(a) in (list, dict)]
        return _typespec_type(models[0]) if models else LEAF
    if origin is list:
        return Shape(items=_typespec_type(args[0]))
    if origin is dict:
        return Shape(items=_typespec_type(args[1]))
    if _is_typespec_model(hint):
        return _shape(hint)
    return LEAF


def _is_typespec_model(hint: Any) -> bool:
    # _calculated is on the generated Model base; _attr_to_rest_field only after a first instance
    return isinstance(hint, type) and hasattr(hint, "_calculated")


_SHAPES: dict[type, Shape] = {}


def _shape(cls: type) -> Shape:
    """The shape of a model class (recursive models share one Shape)."""
    if cls not in _SHAPES:
        package = importlib.import_module(cls.__module__.rsplit(".", 1)[0])
        placeholder = Shape(model=cls.__name__)
        _SHAPES[cls] = placeholder
        built = (_msrest_shape(cls, package) if hasattr(cls, "_attribute_map")
                 else _typespec_shape(cls, package))
        placeholder.__dict__.update(built.__dict__)
    return _SHAPES[cls]


@cache
def model_shape(resource_type: str) -> Shape:
    module, name = CHECKED[resource_type]
    return _shape(getattr(importlib.import_module(module), name))


# --- walking a Bicep body --------------------------------------------------------------------


def _alternatives(node: Any, variables: dict[str, Any]) -> Iterator[Any]:
    """The literal values an expression may take, as far as they can be read."""
    if isinstance(node, str) and node in variables:
        yield from _alternatives(variables[node]["value"], variables)
    elif isinstance(node, dict) and set(node) == {"operator"}:
        op = node["operator"]
        if op["type"] == "conditional":
            yield from _alternatives(op["operands"]["true_value"], variables)
            yield from _alternatives(op["operands"]["false_value"], variables)
    elif isinstance(node, dict) and set(node) == {"function"}:
        function = node["function"]
        params = list(function.get("parameters", {}).values())
        if function["type"] in ("union", "concat"):
            for param in params:
                yield from _alternatives(param, variables)
        elif function["type"] == "map" and isinstance(params[1], dict):
            yield [params[1]["detail"]["expression"]]
    else:
        yield node


def problems(body: Any, shape: Shape, path: str, variables: dict[str, Any]) -> Iterator[str]:
    """Names in ``body`` that ``shape`` does not declare, or declares read-only."""
    for value in _alternatives(body, variables):
        if isinstance(value, list) and shape.items is not None:
            for i, item in enumerate(value):
                yield from problems(item, shape.items, f"{path}[{i}]", variables)
        elif isinstance(value, dict) and shape.items is not None:
            for key, item in value.items():
                yield from problems(item, shape.items, f"{path}.{key}", variables)
        elif isinstance(value, dict) and not shape.fields:
            yield f"{path}: an object, where the model has a plain value"
        elif isinstance(value, dict):
            actual = shape
            for discriminator, (key, sub) in shape.variants.items():
                if value.get(key) == discriminator:
                    actual = _shape(sub)
            for key, item in value.items():
                if key not in actual.fields:
                    yield (f"{path}.{key}: not a property of {actual.model} "
                           f"(it has {', '.join(sorted(actual.fields))})")
                elif key in actual.readonly:
                    yield f"{path}.{key}: read-only in {actual.model}"
                else:
                    yield from problems(item, actual.fields[key], f"{path}.{key}", variables)


def _resources() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            yield path, name, resource


def resource_problems(path: Path, resource: dict[str, Any]) -> list[str]:
    """What is wrong with one resource's names (empty when all are the model's)."""
    body = {k: v for k, v in resource_body(resource).items() if k not in BICEP_KEYS}
    variables = parse(path).get("variables", {})
    return list(problems(body, model_shape(resource["type"]), resource["type"], variables))


CHECKED_RESOURCES = [(p, n, r) for p, n, r in _resources()
                     if r["type"] in CHECKED and not r["existing"]]


# --- tests -----------------------------------------------------------------------------------


def test_every_resource_type_is_checked_or_listed_as_not_checked() -> None:
    used = {resource["type"] for _, _, resource in _resources()}
    unclassified = used - set(CHECKED) - set(NOT_CHECKED)
    assert not unclassified, f"add these types to CHECKED or NOT_CHECKED: {unclassified}"
    assert set(NOT_CHECKED) <= used, "NOT_CHECKED lists a type infra/ no longer uses"
    assert len(CHECKED_RESOURCES) >= 15


@pytest.mark.parametrize(("path", "name", "resource"), CHECKED_RESOURCES,
                         ids=[f"{p.relative_to(INFRA)}:{n}" for p, n, _ in CHECKED_RESOURCES])
def test_resource_uses_the_models_property_names(path: Path, name: str,
                                                 resource: dict[str, Any]) -> None:
    assert resource_problems(path, resource) == []


def test_the_models_go_deep_enough_to_see_nested_names() -> None:
    """The shapes reach the names infra/ relies on, polymorphic ones included."""
    app = model_shape("Microsoft.App/containerApps")
    rule = app.fields["properties"].fields["template"].fields["scale"].fields["rules"].items
    assert rule is not None and {"type", "metadata", "identity"} <= set(
        rule.fields["custom"].fields)
    site = model_shape("Microsoft.Web/sites").fields["properties"]
    storage = site.fields["functionAppConfig"].fields["deployment"].fields["storage"]
    assert "userAssignedIdentityResourceId" in storage.fields["authentication"].fields
    subscription = model_shape("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    dead_letter = subscription.fields["properties"].fields["deadLetterWithResourceIdentity"]
    variants = dead_letter.fields["deadLetterDestination"].variants
    assert "blobContainerName" in _shape(variants["StorageBlob"][1]).fields[
        "properties"].fields


def _mutated(resource: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of ``resource`` with one key renamed wherever it appears."""
    def rename(node: Any) -> Any:
        if isinstance(node, dict):
            return {(new if k == old else k): rename(v) for k, v in node.items()}
        if isinstance(node, list):
            return [rename(v) for v in node]
        return node
    return typing.cast(dict[str, Any], rename(resource))


@pytest.mark.parametrize(("file", "name", "old", "new"), [
    ("main.bicep", "storage", "allowSharedKeyAccess", "allowSharedKeysAccess"),
    ("main.bicep", "functionApp", "userAssignedIdentityResourceId", "userAssignedIdentityId"),
    ("main.bicep", "functionApp", "appSettings", "appSetting"),  # found through map's lambda
    ("modules/gpu-scorer.bicep", "app", "terminationGracePeriodSeconds", "terminationGrace"),
    ("modules/gpu-scorer.bicep", "app", "identity", "identityId"),
    ("modules/gpu-scorer.bicep", "app", "server", "loginServer"),  # in a conditional branch
    ("modules/blob-drop-subscription.bicep", "blobCreated", "blobContainerName", "container"),
    ("modules/scoped-storage-roles.bicep", "containerRoles", "principalType", "type"),
    ("modules/data-account.bicep", "storage", "allowBlobPublicAccess", "allowPublicAccess"),
    ("modules/data-account.bicep", "containers", "publicAccess", "access"),
    ("modules/data-account.bicep", "blobContributorRoles", "roleDefinitionId", "roleId"),
])
def test_a_misspelt_property_is_reported(file: str, name: str, old: str, new: str) -> None:
    path = INFRA / file
    resource = parse(path)["resources"][name]
    assert resource_problems(path, resource) == []
    found = resource_problems(path, _mutated(resource, old, new))
    assert any(f".{new}: not a property" in p for p in found), found


def test_a_read_only_property_is_reported() -> None:
    path = INFRA / "main.bicep"
    resource = parse(path)["resources"]["plan"]
    body = resource_body(resource)
    broken = {**resource, "config": {**body, "properties": {**body["properties"],
                                                            "provisioningState": "x"}}}
    assert any("provisioningState: read-only" in p for p in resource_problems(path, broken))
