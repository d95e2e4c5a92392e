"""The job spec: Azure ML ParallelRunConfig names (v2 names as aliases), validated on parse."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.core.environments import parse_environment, read_environment_files
from batchfx.core.errors import SpecError
from batchfx.core.models import parse_model_reference
from batchfx.core.output_layout import REPORT_FILES
from batchfx.core.sizes import MiniBatchSize, parse_mini_batch_size
from batchfx.core.spec_fields import (
    ENVIRONMENT,
    FILE_NAME_RE,
    NAME_RE,
    OUTPUT_REQUIRED,
    SCRIPT_REQUIRED,
    SIDE_INPUTS,
    Level,
    Problems,
    key_list,
    nonblank,
    not_utf8,
    output_option_problems,
    problem_messages,
    relative_script,
    rule,
    short,
    split_arguments,
    unknown_field,
    upper_logging_level,
)
from batchfx.core.spec_io import (
    load_yaml,
    read_spec_document,
    split_source_path,
    split_storage_path,
    storage_path_problem,
)
from batchfx.core.spec_items import InputSpec, ModelSpec, inputs_value, model_value, models_value

__all__ = ["IGNORED_SETTINGS", "InputSpec", "JobSpec", "ModelSpec", "load_job_spec",
           "parse_job_spec", "split_source_path", "split_storage_path"]

# Fields accepted for Azure ML compatibility that do not change how batchfx runs a job, and why.
IGNORED_SETTINGS = {
    "compute_target": "placement is the Functions platform's: instances scale out on the "
                      "mini-batch queue (node_count and process_count_per_node apply)",
}

# v2 name -> v1 name (retry_settings is handled on its own: it is a nested mapping).
V2_ALIASES = {
    "output_file_name": "append_row_file_name",
    "max_concurrency_per_instance": "process_count_per_node",
    "instance_count": "node_count",
}
_RETRY_KEYS = {"max_retries": "run_max_try", "timeout": "run_invocation_timeout"}


def _check_mini_batch_size(value: Any, info: pydantic.ValidationInfo) -> Any:
    inputs = info.data.get("inputs")
    if isinstance(inputs, list) and inputs:
        inputs = inputs[0]
    if isinstance(inputs, InputSpec):  # otherwise inputs has its own problem, reported apart
        parse_mini_batch_size(value, tabular=inputs.type == "tabular")
    return value


def _environment(value: Any) -> Any:
    """The normalised environment ({pip, python?}), or None for the app's packages only."""
    try:
        found = parse_environment(value)
    except SpecError as exc:
        raise Problems(exc.problems) from None
    return None if found is None else found.to_record()


class JobSpec(BaseModel):
    """A batch inference job, with the names and defaults of Azure ML's ParallelRunConfig."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    name: Annotated[str, rule(NAME_RE.match, "name")]
    # Both may be left out for an MLflow model folder: batchfx then scores with its own script.
    entry_script: Annotated[str | None, rule(relative_script, "entry_script")] = None
    source_directory: Annotated[str | None, rule(nonblank, "source_directory")] = None
    model: Annotated[str | ModelSpec | None, BeforeValidator(model_value)] = None
    # Several models (Azure ML v1 ``models=[...]``): folders or registered models.
    models: Annotated[list[str | ModelSpec], BeforeValidator(models_value)] = Field(
        default_factory=list)
    # One input, or several of one kind (files, or tabular of one format) partitioned in turn.
    inputs: Annotated[InputSpec | list[InputSpec], BeforeValidator(inputs_value)]
    side_inputs: Annotated[dict[str, str], SIDE_INPUTS] = Field(default_factory=dict)
    output: Annotated[str | None, rule(lambda v: storage_path_problem(v) or True)] = None
    mini_batch_size: Annotated[int | str, BeforeValidator(_check_mini_batch_size)] = 10
    error_threshold: int = Field(-1, ge=-1)
    allowed_failed_count: int = Field(-1, ge=-1)
    allowed_failed_percent: float = Field(100.0, ge=0, le=100, allow_inf_nan=False)
    # per_input_file: one output file per input file, named like it (see output_layout).
    output_action: Literal["append_row", "summary_only", "per_input_file"] = "append_row"
    append_row_file_name: Annotated[str, rule(FILE_NAME_RE.match, "append_row_file_name")] = (
        Field("parallel_run_step.txt", alias="output_file_name")
    )
    output_format: Literal["text", "csv", "parquet", "jsonl"] = "text"
    append_row_header: bool = False
    run_invocation_timeout: int = Field(60, gt=0)
    run_max_try: int = Field(3, ge=1)
    process_count_per_node: int = Field(1, ge=1, alias="max_concurrency_per_instance")
    node_count: int = Field(1, ge=1, alias="instance_count")
    arguments: Annotated[list[str], BeforeValidator(split_arguments)] = Field(default_factory=list)
    environment_variables: Annotated[dict[str, str], ENVIRONMENT] = Field(default_factory=dict)
    logging_level: Annotated[Level, BeforeValidator(upper_logging_level)] = "INFO"
    allow_reuse: bool = True
    # Tabular: each output row is the input row's columns, then what run() returned for it.
    join_input: bool = False
    # Rows (tabular: columns or key=value folders) or files (key=value folders) sharing these
    # keys' values go to the same mini-batches, never mixed with other values.
    partition_keys: Annotated[list[str] | None, BeforeValidator(key_list)] = None
    # One append_row file per key values, under Hive-style k=v folders of the output.
    partition_output: bool = False
    # Kept with the job and shown in its view and job_result.txt, as Azure ML does.
    description: Annotated[str | None, rule(lambda v: len(v) <= 2000, "description")] = None
    # Where Azure ML runs the step (a cluster name): batchfx's placement is the Functions
    # platform's. Accepted and reported as not applied (``ignored_settings``).
    compute_target: Annotated[str | None, rule(nonblank, "compute_target")] = None
    # The script's own packages (batchfx.core.environments): {conda_file}, a requirements list;
    # kept normalised as {pip: [...], python?}.
    environment: Annotated[dict[str, Any] | None, BeforeValidator(_environment)] = None

    @property
    def ignored_settings(self) -> dict[str, str]:
        """Fields given that batchfx accepts but does not apply, each with the reason."""
        return {k: why for k, why in IGNORED_SETTINGS.items() if getattr(self, k) is not None}

    @property
    def input(self) -> InputSpec:
        """The first input: what every input of the job shares (type, format) is read here."""
        return self.inputs[0] if isinstance(self.inputs, list) else self.inputs

    @property
    def input_list(self) -> list[InputSpec]:
        """Every input, in the order they are partitioned."""
        return list(self.inputs) if isinstance(self.inputs, list) else [self.inputs]

    def input_field(self, index: int) -> str:
        """How problems name input ``index``: ``inputs`` alone, ``inputs[1]`` of several."""
        return f"inputs[{index}]" if isinstance(self.inputs, list) else "inputs"

    @property
    def model_entries(self) -> list[tuple[str, str]]:
        """(field, path or reference) of every model the spec names: ``model`` or
        ``models[i]``."""
        given = [("model", self.model)] if self.model else [
            (f"models[{i}]", value) for i, value in enumerate(self.models)]
        return [(field, v.path if isinstance(v, ModelSpec) else v) for field, v in given]

    @property
    def model_names(self) -> dict[str, tuple[str, int]]:
        """(name, version) of the models given as ``{path, name}``, by field."""
        given = [("model", self.model)] if self.model else [
            (f"models[{i}]", value) for i, value in enumerate(self.models)]
        return {field: (v.name, v.version) for field, v in given
                if isinstance(v, ModelSpec) and v.name}

    @property
    def mini_batch_limit(self) -> MiniBatchSize:
        """``mini_batch_size`` parsed: a file count or a byte size."""
        return parse_mini_batch_size(self.mini_batch_size, tabular=self.input.type == "tabular")

    def to_record(self) -> dict[str, Any]:
        """Canonical JSON-able dict: v1 names, defaults filled."""
        return self.model_dump(mode="json")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> JobSpec:
        """Rebuild a spec stored with :meth:`to_record` (validated again)."""
        return parse_job_spec(record)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_v2_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        cleaned, problems, _ = _normalise(data)
        if problems:
            raise Problems(problems)
        return cleaned

    @pydantic.model_validator(mode="after")
    def _output_needed(self) -> JobSpec:
        if self.model and self.models:
            raise Problems([f"model and models: both given ({short(self.model)} and "
                            f"{short(self.models)}) — give one model, or list them all under "
                            "models"])
        if self.entry_script is None and (self.source_directory is not None
                                          or len(self.model_entries) != 1):
            raise Problems([SCRIPT_REQUIRED])
        if self.entry_script is not None and self.source_directory is None:
            raise Problems(["source_directory: missing — required with entry_script: the "
                             "folder holding the script, e.g. source_directory: ./src"])
        problems: list[str] = []
        if self.output is None and self.output_action != "summary_only":
            problems.append(OUTPUT_REQUIRED)
        if self.output_action == "per_input_file" and len(self.input_list) > 1:
            problems.append("output_action: got 'per_input_file' — its output files are named "
                            "after the input files, which several inputs may share; run a job "
                            "per input, or use append_row")
        if self.partition_keys and any(i.type == "uri_file" for i in self.input_list):
            why = ("a uri_file input is one file; use a uri_folder with key=value folders, or "
                   "type: tabular, or remove partition_keys")
            problems.append(f"partition_keys: got {short(self.partition_keys)} — {why}")
        problems += output_option_problems(
            tabular=self.input.type == "tabular", output_action=self.output_action,
            join_input=self.join_input, partition_output=self.partition_output,
            partition_keys=self.partition_keys)
        name = self.append_row_file_name
        if name == "logs":
            problems.append("append_row_file_name: got 'logs' — that is the folder of the "
                            "workers' logs next to the rows; choose another name")
        if (self.output_action == "append_row" and not self.partition_output
                and name in REPORT_FILES):
            problems.append(f"append_row_file_name: got {name!r} — that is the name of a report "
                            f"batchfx writes next to the rows ({', '.join(sorted(REPORT_FILES))})"
                            ", which would replace them; choose another name")
        for field, value in self.model_entries:
            try:
                reference = parse_model_reference(field, value)
            except SpecError as exc:
                problems += exc.problems
                continue
            if reference is not None and field in self.model_names:
                problems.append(f"{field}: a registered model ({value}) has its own name and "
                                "version — give it as a string, or give a folder as path")
        if problems:
            raise Problems(problems)
        return self


_TOP_FIELDS = [*JobSpec.model_fields, *V2_ALIASES, "retry_settings"]


def _normalise(data: Mapping[Any, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Map v2 names onto v1 names; returns (data, problems, labels of fields given by v2 name)."""
    problems: list[str] = []
    labels: dict[str, str] = {}
    out = {str(k): v for k, v in data.items() if k not in V2_ALIASES and k != "retry_settings"}
    sources = [(V2_ALIASES[k], k, v) for k, v in data.items() if k in V2_ALIASES]
    retry = data.get("retry_settings", {})
    if not isinstance(retry, Mapping):
        expected = "expected a mapping like {max_retries: 3, timeout: 60}"
        problems.append(f"retry_settings: got {short(retry)} — {expected}")
        retry = {}
    for key, value in retry.items():
        if key in _RETRY_KEYS:
            sources.append((_RETRY_KEYS[key], f"retry_settings.{key}", value))
        else:
            problems.append(unknown_field(f"retry_settings.{key}", list(_RETRY_KEYS)))
    for v1, source, value in sources:
        if v1 not in out:
            labels[v1] = f"{v1} (given as {source})"
            out[v1] = value
        elif (type(out[v1]), out[v1]) != (type(value), value):
            both = f"both given ({short(out[v1])} and {short(value)}) — give only one"
            problems.append(f"{v1} and {source}: {both}; {source} is the v2 name of {v1}")
    inputs = out.get("inputs")
    if isinstance(inputs, list) and inputs:
        inputs = inputs[0]
    if isinstance(inputs, Mapping) and inputs.get("type") == "tabular":
        out.setdefault("mini_batch_size", "1MB")  # Azure ML's tabular default
    return out, problems, labels


def _unknown(path: str) -> str:
    inner = path.startswith("inputs.")
    return unknown_field(path, list(InputSpec.model_fields) if inner else _TOP_FIELDS)


def parse_job_spec(data: object) -> JobSpec:
    """Validate a job spec mapping; SpecError lists one message per problem."""
    if not isinstance(data, Mapping):
        expected = "expected a mapping of field names to values, e.g. name: digits-nightly"
        raise SpecError([f"job spec: got {type(data).__name__} {short(data)} — {expected}"])
    if text_problems := not_utf8(data):
        raise SpecError(text_problems)  # nothing else can be checked, or even printed, safely
    cleaned, problems, labels = _normalise(data)
    # Checked here as well as in the model so it is reported together with the other problems.
    writes_files = cleaned.get("output_action", "append_row") in ("append_row", "per_input_file")
    if cleaned.get("output") is None and writes_files:
        problems.append(OUTPUT_REQUIRED)
    try:
        spec = JobSpec.model_validate(cleaned)
    except pydantic.ValidationError as exc:
        problems.extend(problem_messages(exc, unknown=_unknown, labels=labels))
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return spec


def load_job_spec(path: str | os.PathLike[str]) -> tuple[JobSpec, Path]:
    """Read a YAML or JSON job spec; returns it and the spec file's folder (for relative paths)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise SpecError([f"{file}: cannot read the job spec ({reason})"]) from None
    folder = file.resolve().parent
    document = read_environment_files(read_spec_document(file, text), folder, load_yaml)
    return parse_job_spec(document), folder
