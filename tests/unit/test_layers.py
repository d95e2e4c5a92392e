"""batchfx's layers, read from its source: no import cycle (imports inside functions
included), pure modules that reach no storage and no Azure SDK, and every Azure Storage SDK
call in batchfx/storage/."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "batchfx"

# The pure core: rules, models, formats and plans. They may import each other and the
# standard library, pydantic, yaml, pandas/pyarrow; never batchfx.storage, a service over
# it, or an Azure SDK.
PURE = {
    "batchfx", "batchfx.access", "batchfx.deployments", "batchfx.environments",
    "batchfx.errors", "batchfx.file_refs", "batchfx.final_tally", "batchfx.image",
    "batchfx.isolation", "batchfx.models", "batchfx.output_format", "batchfx.output_layout",
    "batchfx.partition", "batchfx.pipelines", "batchfx.progress", "batchfx.progress_tally",
    "batchfx.records", "batchfx.reports", "batchfx.schedule_parsing", "batchfx.schedules",
    "batchfx.settings", "batchfx.sizes", "batchfx.spec", "batchfx.spec_fields",
    "batchfx.spec_io", "batchfx.spec_items", "batchfx.watch_steps", "batchfx.work_cache",
    "batchfx.scoring.contract",
    "batchfx.scoring.shaping", "batchfx.local.durable_history",
    *(f"batchfx.tabular.{p.stem}" for p in (PACKAGE / "tabular").glob("*.py")
      if p.stem != "__init__"),
    "batchfx.tabular",
}
SDKS = {"azure", "requests", "urllib3"}
# The Azure Storage SDKs (blobs, queues, tables, azure-core's errors): batchfx/storage/ only
# (the local Durable store included: it goes through BlobStore).
STORAGE_SDK = ("azure.storage", "azure.data.tables", "azure.core")


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each module's batchfx imports (as modules) and other imports (dotted names)."""
    modules = _modules()

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    inner: dict[str, set[str]] = defaultdict(set)
    outer: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            for name in names:
                if name.split(".")[0] == "batchfx":
                    target = resolve(name)
                    if target and target != module:
                        inner[module].add(target)
                else:
                    outer[module].add(name)
    return inner, outer


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    inner, _ = _imports()
    assert _cycles(inner) == []


def test_pure_modules_reach_no_storage_service_or_azure_sdk() -> None:
    inner, outer = _imports()
    assert set(_modules()) >= PURE, PURE - set(_modules())  # the list names real modules
    problems = []
    for module in sorted(PURE):
        for target in sorted(inner[module] - PURE):
            problems.append(f"{module} imports {target}, which is not pure")
        sdks = sorted(n for n in outer[module] if n.split(".")[0] in SDKS)
        problems += [f"{module} imports {n}" for n in sdks]
    assert problems == []


def test_the_storage_sdks_are_called_from_batchfx_storage_only() -> None:
    _, outer = _imports()
    callers = sorted(module for module, names in outer.items()
                     if any(n.startswith(STORAGE_SDK) for n in names)
                     and not module.startswith("batchfx.storage"))
    # The one other caller: the script's Key Vault broker, whose SDK (azure.keyvault) raises
    # azure-core's errors.
    assert callers == ["batchfx.scoring.secrets"]


def test_the_checks_see_a_cycle_and_an_impure_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    inner, _ = _imports()
    assert "batchfx.storage" in inner["batchfx.jobs"]  # a service: what PURE must not reach
