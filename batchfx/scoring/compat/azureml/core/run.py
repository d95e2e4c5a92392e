"""``azureml.core.Run`` under batchfx: the job is the run (``Run.get_context()``)."""

from __future__ import annotations

from typing import Any

from batchfx.scoring import aml_run

__all__ = ["Experiment", "Keyvault", "Refusing", "Run", "Workspace", "get_run"]


class Refusing:
    """A class whose missing attributes raise CompatError naming the call and what to use
    instead (dunder lookups stay AttributeError: copy, pickle and hasattr work)."""

    _instead = "see the compatibility table in batchfx's README"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        aml_run.unsupported(f"{type(self).__name__}.{name}", self._instead)


class Keyvault(Refusing):
    """The workspace's Key Vault: the app's Azure Key Vault (BATCHFX_KEY_VAULT_URL, read with
    its managed identity), or locally a secrets file / BATCHFX_SECRET_<NAME> variables; the
    worker reads them for the script."""

    _instead = "use get_secret(name) or get_secrets(names)"

    def get_secret(self, name: str) -> str:
        return aml_run.get_secret(name)

    def get_secrets(self, secrets: list[str]) -> dict[str, str]:
        return {name: aml_run.get_secret(name) for name in secrets}

    def set_secret(self, name: str, value: str) -> None:
        aml_run.unsupported("Keyvault.set_secret", "a scoring script reads secrets only; set "
                            "them in the Key Vault (az keyvault secret set) or the secrets file")


class Workspace(Refusing):
    """The workspace a run belongs to: its Key Vault is what a scoring script uses."""

    _instead = ("a scoring script reaches its models with Model.get_model_path and secrets "
                "with get_default_keyvault()")

    name = "batchfx"

    def get_default_keyvault(self) -> Keyvault:
        return Keyvault()

    @staticmethod
    def from_config(*args: Any, **kwargs: Any) -> Workspace:
        aml_run.unsupported("Workspace.from_config", "use Run.get_context().experiment.workspace")

    @staticmethod
    def get(*args: Any, **kwargs: Any) -> Workspace:
        aml_run.unsupported("Workspace.get", "use Run.get_context().experiment.workspace")


class Experiment(Refusing):
    """The run's experiment: the pipeline run's ExperimentName, else the job's name."""

    _instead = "use its name and workspace only"

    def __init__(self, name: str) -> None:
        self.name = name
        self.workspace = Workspace()


class Run(Refusing):
    """The batchfx job as an Azure ML run. Metrics and tags are kept with the job: its view
    (``batchfx show``) and ``metrics.json`` next to its outputs."""

    def __init__(self, run_id: str, on: str) -> None:
        self.id = run_id
        self._on = on  # "step" (the job) or "parent" (the pipeline run)
        self.number = 1
        self.experiment = Experiment(aml_run.current().info.experiment)

    @classmethod
    def get_context(cls, allow_offline: bool = True, **kwargs: Any) -> Run:
        info = aml_run.current().info
        return cls(info.job_id, "step")

    @property
    def parent(self) -> Run:
        info = aml_run.current().info
        return Run(info.parent_run_id or info.job_id, "parent")

    @property
    def input_datasets(self) -> dict[str, str]:
        """Each side input by name: the local folder (or file) it is read from."""
        return dict(aml_run.current().info.input_datasets)

    def _record(self, kind: str, name: str, value: Any, description: str = "") -> None:
        aml_run.record(self._on, kind, name, value, description)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None
            ) -> None:
        self._record("log", name, value, description)

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        self._record("list", name, list(value), description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._record("row", name, kwargs, description or "")

    def log_table(self, name: str, value: dict[str, list[Any]], description: str = "") -> None:
        self._record("table", name, value, description)

    def tag(self, key: str, value: Any = None) -> None:
        self._record("tag", key, "" if value is None else str(value))

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self) -> dict[str, Any]:
        """The tags this worker process set (Azure ML returns every worker's)."""
        return aml_run.logged(self._on, "tag")

    def get_metrics(self, name: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """The metrics this worker process logged (Azure ML returns every worker's): one
        value as it is, several as a list."""
        metrics = aml_run.logged(self._on, "metric")
        return metrics if name is None else {name: metrics[name]} if name in metrics else {}

    def get_secret(self, name: str) -> str:
        return aml_run.get_secret(name)

    def get_secrets(self, secrets: list[str]) -> dict[str, str]:
        return {name: aml_run.get_secret(name) for name in secrets}

    def flush(self, timeout_seconds: int = 300) -> None:
        """Nothing to do: each call is written when made."""

    def complete(self, _set_status: bool = True) -> None:
        """Nothing to do: batchfx ends the job when its mini-batches are done."""

    def log_image(self, name: str, path: str | None = None, plot: Any = None,
                  description: str = "") -> None:
        aml_run.unsupported("Run.log_image", "save the image under AZUREML_BI_OUTPUT_PATH: "
                            "its files are copied to the job's output")

    def upload_file(self, name: str, path_or_stream: Any, **kwargs: Any) -> None:
        aml_run.unsupported("Run.upload_file", "write the file under AZUREML_BI_OUTPUT_PATH: "
                            "its files are copied to the job's output")



def get_run(*args: Any, **kwargs: Any) -> Run:
    aml_run.unsupported("azureml.core.get_run", "use Run.get_context()")
