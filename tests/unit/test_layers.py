"""batchfx's layers, read from its source: each package imports only its own layer and the
layers below it, no import cycle (imports inside functions included), pure modules that reach
no storage and no Azure SDK, and every Azure Storage SDK call in batchfx/storage/."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "batchfx"

# The layers, lowest first (README "How it is built"). A module may import its own layer
# and any lower one, never a higher one.
LAYERS = {
    "core": 0,      # pure rules, models, formats and plans
    "tabular": 0,   # pure: cutting and reading tabular inputs
    "storage": 1,   # every Azure Storage SDK call
    "scoring": 2,   # the scoring-script process (parent side and child)
    "services": 3,  # jobs, partitioning, scoring, finalize, registry … over Storage
    "api": 4,       # the Functions app's triggers (blueprints) and what they share
    "local": 5,     # the local runner: the app's own functions against Azurite
    "cli": 6,       # the batchfx command
}
# The package's entry points, above every layer.
ENTRY = {"batchfx.__main__": 7}

# The pure modules: they may import each other and the standard library, pydantic, yaml,
# pandas/pyarrow; never batchfx.storage, a service over it, or an Azure SDK.
PURE_PACKAGES = ("batchfx.core", "batchfx.tabular")
PURE_ELSEWHERE = {"batchfx", "batchfx.scoring.shaping", "batchfx.local.durable.history"}
SDKS = {"azure", "requests", "urllib3"}
# The Azure Storage SDKs (blobs, queues, tables, azure-core's errors): batchfx/storage/ only
# (the local Durable store included: it goes through BlobStore).
STORAGE_SDK = ("azure.storage", "azure.data.tables", "azure.core")


def _pure() -> set[str]:
    return {m for m in _modules()
            if m.startswith(PURE_PACKAGES) or m in PURE_ELSEWHERE}


def _rank(module: str) -> int:
    if module in ENTRY:
        return ENTRY[module]
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


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


def test_every_module_is_in_a_layer() -> None:
    unplaced = [m for m in _modules() if m.count(".") >= 1 and m not in ENTRY
                and m.split(".")[1] not in LAYERS]
    assert unplaced == []


def test_no_layer_imports_a_higher_one() -> None:
    inner, _ = _imports()
    upward = [f"{module} imports {target}" for module in sorted(inner)
              for target in sorted(inner[module]) if _rank(target) > _rank(module)]
    assert upward == []


def test_pure_modules_reach_no_storage_service_or_azure_sdk() -> None:
    inner, outer = _imports()
    pure = _pure()
    assert set(_modules()) >= PURE_ELSEWHERE  # the list names real modules
    problems = []
    for module in sorted(pure):
        for target in sorted(inner[module] - pure):
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
    # a service: what a pure module must not reach
    assert "batchfx.storage" in inner["batchfx.services.jobs"]
    assert _rank("batchfx.cli.main") > _rank("batchfx.services.jobs") > _rank("batchfx.core.spec")


def test_the_readme_tree_places_every_module_in_its_layer() -> None:
    """README's "How it is built" tree names each module under its package's line, with
    the package's layer number, so a newcomer can tell any module's layer."""
    readme = (PACKAGE.parent / "README.md").read_text()
    tree = readme.split("## How it is built", 1)[1].split("```", 2)[1]
    blocks: dict[str, tuple[int, str]] = {}
    current = ""
    for line in tree.splitlines():
        head = re.match(r"^  (\w+)/\s+(\d)\s+(.*)$", line)
        if head:
            current = head.group(1)
            blocks[current] = (int(head.group(2)), head.group(3))
        elif current and line.startswith(" " * 16):
            blocks[current] = (blocks[current][0], blocks[current][1] + " " + line)
    assert {name: rank for name, (rank, _) in blocks.items()} == LAYERS
    missing = []
    for module in _modules():
        parts = module.split(".")
        if len(parts) != 3 or module in ENTRY:  # a subpackage is named by its folder
            continue
        words = set(re.findall(r"\w+/?", blocks[parts[1]][1]))
        if parts[2] not in words and f"{parts[2]}/" not in words:
            missing.append(module)
    assert missing == []
