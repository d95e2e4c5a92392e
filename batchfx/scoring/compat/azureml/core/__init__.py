"""batchfx's stand-in for ``azureml.core`` in a scoring script, used only where the real
package is not installed. ``Model``, ``Run`` (and its experiment, workspace, Key Vault) answer
what a scoring script asks of them; any other name imports, and using it raises an error
naming the call and what to use instead."""

from __future__ import annotations

from typing import Any

from batchfx.scoring import aml_run

from .model import Model
from .run import Experiment, Keyvault, Run, Workspace, get_run

__all__ = ["Experiment", "Keyvault", "Model", "Run", "Workspace", "get_run"]

_INSTEAD = {
    "Dataset": "declare the data as side_inputs in the job and read "
               "Run.get_context().input_datasets[name] (a local path)",
    "Datastore": "name folders of the app's storage (container/prefix) in the job spec",
    "Environment": "give the job's packages with its environment field",
}


class _Unsupported:
    """A name of azureml.core that batchfx does not offer: importing it works (module-level
    imports of unused names must not break a script); using it raises CompatError."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _fail(self, call: str) -> Any:
        aml_run.unsupported(call, _INSTEAD.get(self._name, "see the compatibility table in "
                                                           "batchfx's README"))

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return self._fail(f"azureml.core.{self._name}.{attribute}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fail(f"azureml.core.{self._name}(...)")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    return _Unsupported(name)
