"""infra/'s Bicep, read offline: every file parses (pycep-parser), and a small evaluator.

The evaluator gives the other infra tests the values a deployment would compute from a set
of parameters: literals, parameters (given or their defaults), variables, module parameters,
conditionals, the few functions infra uses (union, join, map and filter, contains, max,
string, take, replace…) and property reads of literal objects. Anything only Azure knows (a
resource's id, a unique string) is an ``Unknown`` that remembers the expression, so two
references to the same property compare equal.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lark.exceptions import LarkError
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"

__all__ = ["INFRA", "MAIN", "ROOT", "Template", "Unknown", "bicep_files", "parse", "resource_body"]


@dataclass(frozen=True)
class Unknown:
    """A value only known at deployment time, named by the expression that reads it."""

    expression: str


def bicep_files() -> list[Path]:
    """Every Bicep file under infra/."""
    return sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser(cache=False)  # lark's cache is a file in the temp folder: not needed


@cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one Bicep file."""
    return _parser().parse(file_path=path)


def resource_body(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, under a loop or a condition if it has one."""
    config: dict[str, Any] = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def _is_expression(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in (
        "operator", "function")


def _accessor_path(node: Any) -> list[Any]:
    """``a.b.c`` comes right-nested from pycep: accessor(a, accessor(b, c))."""
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        if op["type"] == "property_accessor":
            return _accessor_path(op["operands"]["operand_1"]) + _accessor_path(
                op["operands"]["operand_2"])
    return [node]


class Template:
    """One Bicep file with its parameters bound (``params``, else each one's default)."""

    def __init__(self, path: Path, params: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.json = parse(path)
        self.params = dict(params or {})
        unknown = set(self.params) - set(self.json.get("parameters", {}))
        if unknown:
            raise KeyError(f"{path.name} has no parameter {sorted(unknown)}")
        self._values: dict[str, Any] = {}

    # --- symbols ---------------------------------------------------------------------------

    def symbol(self, name: str, scope: Mapping[str, Any] | None = None) -> Any:
        """The value of an identifier: a lambda variable, parameter, variable, or a resource."""
        if scope and name in scope:
            return scope[name]
        if name in self._values:
            return self._values[name]
        parameters = self.json.get("parameters", {})
        variables = self.json.get("variables", {})
        if name in parameters:
            value = self.params[name] if name in self.params else self.value(
                parameters[name].get("default", Unknown(name)))
        elif name in variables:
            value = self.value(variables[name]["value"])
        elif name in self.json.get("resources", {}) or name in self.json.get("modules", {}):
            value = Unknown(name)
        else:
            raise KeyError(name)
        self._values[name] = value
        return value

    def _is_symbol(self, text: str, scope: Mapping[str, Any] | None) -> bool:
        return bool(scope and text in scope) or any(
            text in self.json.get(part, {}) for part in (
                "parameters", "variables", "resources", "modules"))

    def variable(self, name: str) -> Any:
        return self.symbol(name)

    def resource(self, name: str) -> dict[str, Any]:
        """A resource's body (loop and condition unwrapped), evaluated."""
        body = self.value(resource_body(self.json["resources"][name]))
        assert isinstance(body, dict)
        return body

    def resource_type(self, name: str) -> str:
        return str(self.json["resources"][name]["type"])

    def deployed(self, name: str) -> Any:
        """Whether a resource or module is deployed: its ``if`` condition, evaluated (True
        without one; a loop's count is its array's length, see ``loop_values``)."""
        declared = {**self.json.get("resources", {}), **self.json.get("modules", {})}[name]
        condition = declared["config"].get("condition")
        return True if condition is None else self.value(condition)

    def loop_values(self, name: str, key: str) -> list[Any]:
        """``key`` of the body of each copy a resource loop deploys (one copy without a loop),
        evaluated with the loop's item: the names of a loop of containers, for example."""
        config = self.json["resources"][name]["config"]
        body = resource_body(self.json["resources"][name])
        loop = config.get("loop_type")
        if loop is None:
            return [self.value(body[key])]
        items = self.value(loop["detail"]["array_name"])
        assert isinstance(items, list), f"{name}: the loop's array is not known: {items}"
        return [self.value(body[key], {loop["detail"]["item_name"]: item}) for item in items]

    def module_params(self, name: str) -> dict[str, Any]:
        """The parameters a module call passes, evaluated in this file."""
        params = self.value(resource_body(self.json["modules"][name])["params"])
        assert isinstance(params, dict)
        return params

    def module(self, name: str) -> Template:
        """The called module, with the parameters this file passes it."""
        path = (self.path.parent / self.json["modules"][name]["detail"]["path"]).resolve()
        return Template(path, self.module_params(name))

    # --- expressions -----------------------------------------------------------------------

    def value(self, node: Any, scope: Mapping[str, Any] | None = None) -> Any:
        """What ``node`` evaluates to (Unknown where only Azure knows)."""
        if isinstance(node, str):
            if self._is_symbol(node, scope):
                return self.symbol(node, scope)
            return self._interpolate(node, scope)
        if isinstance(node, list):
            return [self.value(item, scope) for item in node]
        if _is_expression(node):
            if "operator" in node:
                return self._operator(node, scope)
            return self._function(node["function"], scope)
        if isinstance(node, dict):  # an object literal; pycep keeps quoted keys' quotes
            return {self._interpolate(k.strip("'"), scope): self.value(v, scope)
                    for k, v in node.items()}
        return node

    def _interpolate(self, text: str, scope: Mapping[str, Any] | None) -> Any:
        if "${" not in text:
            return text
        whole = _INTERPOLATION.fullmatch(text)
        if whole and _PATH.match(whole.group(1)):  # '${x.id}' is x.id itself
            return self._path(whole.group(1).split("."), scope)
        known = True

        def part(match: re.Match[str]) -> str:
            nonlocal known
            value = self._path(match.group(1).split("."), scope) if _PATH.match(
                match.group(1)) else Unknown(match.group(1))
            if isinstance(value, Unknown):
                known = False
                return match.group(0)  # left as written: Unknown names what Azure fills in
            return str(value)

        text = _INTERPOLATION.sub(part, text)
        return text if known else Unknown(text)

    def _path(self, path: list[Any], scope: Mapping[str, Any] | None) -> Any:
        first, *rest = path
        base = self.value(first, scope)
        if isinstance(base, Unknown):
            return Unknown(".".join([base.expression, *map(str, rest)]))
        for name in rest:
            if not isinstance(base, dict) or name not in base:
                return Unknown(f"{first}.{name}")
            base = base[name]
        return base

    def _operator(self, node: dict[str, Any], scope: Mapping[str, Any] | None) -> Any:
        op = node["operator"]
        kind, operands = op["type"], op["operands"]
        if kind == "property_accessor":
            return self._path(_accessor_path(node), scope)
        args = {k: self.value(v, scope) for k, v in operands.items()
                if k not in ("true_value", "false_value")}
        if any(isinstance(v, Unknown) for v in args.values()):
            return Unknown(f"{kind}({', '.join(map(str, args.values()))})")
        if kind == "conditional":
            branch = "true_value" if args["condition"] else "false_value"
            return self.value(operands[branch], scope)
        if kind == "index_accessor":
            return args["operand_1"][args["operand_2"]]
        if kind == "not":
            return not next(iter(args.values()))
        a, b = args.get("operand_1"), args.get("operand_2")
        table = {"add": lambda: a + b, "multiply": lambda: a * b,
                 "and": lambda: a and b, "or": lambda: a or b,
                 "equals": lambda: a == b, "not_equals": lambda: a != b}
        if kind not in table:
            return Unknown(kind)
        return table[kind]()

    def _function(self, function: dict[str, Any], scope: Mapping[str, Any] | None) -> Any:
        kind = function["type"]
        raw = list(function.get("parameters", {}).values())
        if kind in ("map", "filter"):
            items = self.value(raw[0], scope)
            if isinstance(items, Unknown):
                return items
            detail = raw[1]["detail"]
            results = [self.value(detail["expression"], {**(scope or {}), detail["var_1"]: item})
                       for item in items]
            if kind == "map":
                return results
            if any(isinstance(r, Unknown) for r in results):
                return Unknown(f"filter({items})")
            return [item for item, keep in zip(items, results, strict=True) if keep]
        args = [self.value(a, scope) for a in raw]
        if any(isinstance(a, Unknown) for a in args) and kind not in ("union", "concat"):
            return Unknown(f"{kind}({', '.join(map(str, args))})")
        if kind == "union":
            if all(isinstance(a, dict) for a in args):
                merged: dict[str, Any] = {}
                for a in args:
                    merged.update(a)
                return merged
            return [x for i, a in enumerate(args) for x in a if x not in _flat(args[:i])]
        if kind == "concat":
            return [x for a in args for x in a]
        table = {
            "items": lambda: [{"key": k, "value": v} for k, v in args[0].items()],
            "join": lambda: args[1].join(args[0]),
            "string": lambda: str(args[0]).lower() if isinstance(args[0], bool) else str(
                args[0]),
            "empty": lambda: not args[0],
            "contains": lambda: args[1] in args[0],
            "starts_with": lambda: args[0].startswith(args[1]),
            "take": lambda: args[0][:args[1]],
            "to_lower": lambda: args[0].lower(),
            "replace": lambda: args[0].replace(args[1], args[2]),
            "max": lambda: max(args),
            "min": lambda: min(args),
        }
        if kind not in table:
            return Unknown(f"{kind}({', '.join(map(str, args))})")  # only Azure evaluates it
        return table[kind]()


def _flat(lists: list[Any]) -> list[Any]:
    return [x for a in lists for x in a]


def _module_paths(path: Path) -> Iterator[Path]:
    for module in parse(path).get("modules", {}).values():
        yield (path.parent / module["detail"]["path"]).resolve()


# --- tests ---------------------------------------------------------------------------------


def test_infra_has_the_main_template_and_its_modules() -> None:
    names = {p.relative_to(INFRA).as_posix() for p in bicep_files()}
    assert {"main.bicep", "modules/gpu-scorer.bicep", "modules/storage-roles.bicep",
            "modules/scoped-storage-roles.bicep", "modules/blob-drop-subscription.bicep",
            "modules/acr-pull.bicep", "modules/data-account.bicep"} <= names


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path: Path) -> None:
    template = parse(path)
    assert template.get("resources") or template.get("modules"), f"{path}: nothing declared"


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_every_module_a_file_calls_exists(path: Path) -> None:
    for module in _module_paths(path):
        assert module.is_file(), f"{path.name} calls {module}, which does not exist"


def test_a_syntax_error_fails_to_parse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text(MAIN.read_text().replace("resource storage ", "resource storage = ", 1))
    with pytest.raises((LarkError, ValueError)):  # ValueError: pycep's own validator
        parse(broken)


def test_the_evaluator_follows_parameters_variables_and_conditionals() -> None:
    main = Template(MAIN)
    assert main.symbol("scoreOnFunctionApp") is True  # !deployGpuScorer
    assert Template(MAIN, {"deployGpuScorer": True}).symbol("scoreOnFunctionApp") is False
    settings = main.variable("functionAppSettings")
    assert settings["BATCHFX_QUEUE_NAME"] == "batchfx-minibatches"
    assert settings["AzureWebJobsStorage__accountName"] == Unknown("storage.name")
    assert "BATCHFX_KEY_VAULT_URL" not in settings
    vault = Template(MAIN, {"keyVaultName": "kv1"}).variable("functionAppSettings")
    assert vault["BATCHFX_KEY_VAULT_URL"] == Unknown(
        "https://kv1${environment().suffixes.keyvaultDns}/")


def test_the_evaluator_computes_names_and_filters() -> None:
    main = Template(MAIN, {"namePrefix": "my-app", "resourceToken": "abc123"})
    assert main.symbol("storageAccountName") == "stmyappabc123"  # replace, to_lower, take
    # The default token is a uniqueString: only Azure knows it.
    assert isinstance(Template(MAIN).symbol("storageAccountName"), Unknown)
    data = Template(MAIN, {"deployDataAccount": True, "dataContainerNames": ["a", "inbox"]})
    assert data.symbol("dataAccountContainerNames") == ["outputs", "a"]  # filter, contains
    assert data.symbol("mainJobContainerNames") == ["batchfx", "inbox"]
    assert data.deployed("dataAccount") is True and main.deployed("dataAccount") is False
    assert main.deployed("storage") is True
    assert data.module("dataAccount").loop_values("containers", "name") == ["outputs", "a"]


def test_every_checkov_skip_names_one_check_and_why() -> None:
    """infra/checkov-skips.txt, which scripts/check passes to checkov's --skip-check."""
    lines = [line for line in (INFRA / "checkov-skips.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    checks = [line.split()[0] for line in lines]
    assert checks and len(set(checks)) == len(checks)
    for line, check in zip(lines, checks, strict=True):
        assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check), line
        assert len(line[len(check):].split()) >= 5, f"{check}: give the reason"
    assert "infra/checkov-skips.txt" in (ROOT / "scripts" / "check").read_text()
