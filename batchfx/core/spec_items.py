"""The parts of a job spec that are specs of their own: its inputs (``InputSpec``: one, or
several of one kind) and its models given as ``{path, name}`` (``ModelSpec``), each checked
with one message per problem, naming the input or model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from batchfx.core.models import MODEL_NAME_RE
from batchfx.core.spec_fields import (
    EXPECTED,
    FORMATS,
    Problems,
    folder_string,
    model_list,
    nonblank,
    rule,
    short,
    unknown_field,
)

__all__ = ["InputSpec", "ModelSpec", "inputs_value", "model_value", "models_value"]

_INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class InputSpec(BaseModel):
    """The job's inputs: a folder (``uri_folder``) or one file (``uri_file``) of blobs, or
    ``tabular`` rows read from CSV, Parquet or JSON-lines files (a folder or one file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Annotated[str, rule(nonblank, "inputs.path")]
    type: Literal["uri_folder", "uri_file", "tabular"] = "uri_folder"
    format: Literal["csv", "parquet", "jsonl"] | None = None
    # An fnmatch pattern on the blob name relative to the prefix; None = every file.
    glob: Annotated[str | None, rule(nonblank, "inputs.glob")] = None
    # Several inputs (ParallelRunStep's inputs=[...as_named_input(name)]) are told apart by
    # name; one input needs none.
    name: Annotated[str | None, rule(lambda v: bool(_INPUT_NAME_RE.match(v)), "inputs.name")] = (
        None)

    @pydantic.model_serializer(mode="wrap")
    def _without_unset_name(self, handler: pydantic.SerializerFunctionWrapHandler
                            ) -> dict[str, Any]:
        # A job with one input records it as before names existed (reuse keys unchanged).
        data: dict[str, Any] = handler(self)
        if data.get("name") is None:
            data.pop("name", None)
        return data

    @pydantic.model_validator(mode="after")
    def _fits_together(self) -> InputSpec:
        problems: list[str] = []
        if self.glob is not None and self.type == "uri_file":
            message = "glob applies to folder inputs (uri_folder, tabular) only; remove it"
            problems.append(f"inputs.glob: got {short(self.glob)} — {message}")
        if self.type == "tabular" and self.format is None:
            problems.append(f"inputs.format: missing — tabular inputs need format: {FORMATS}")
        if self.type != "tabular" and self.format is not None:
            why = "format applies to tabular inputs only; add type: tabular or remove format"
            problems.append(f"inputs.format: got {short(self.format)} — {why}")
        if problems:
            raise Problems(problems)
        return self


class ModelSpec(BaseModel):
    """A model as Azure ML v2 writes it inline: ``{path, name?, version?}`` (a folder named
    ``name`` for ``Model.get_model_path``; ``type``, ``description``, ``tags`` are kept)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    path: Annotated[str, rule(nonblank, "model.path")]
    name: Annotated[str | None, rule(lambda v: bool(MODEL_NAME_RE.match(v)), "model.name")] = (
        None)
    version: int = Field(1, ge=1)
    type: Literal["custom_model", "mlflow_model"] = "custom_model"
    description: str | None = None
    tags: dict[str, str] | None = None


def _input(value: Any, field: str) -> InputSpec:
    """One input (a folder path, or a mapping) validated, its problems named by ``field``."""
    if isinstance(value, InputSpec):
        return value
    value = folder_string(value)  # a path string -> {path, type: uri_folder}
    if not isinstance(value, Mapping):
        raise Problems([f"{field}: got {short(value)} — {EXPECTED['inputs']}"])
    try:
        return InputSpec.model_validate(dict(value))
    except pydantic.ValidationError as exc:
        raise Problems(_problems(exc, field, list(InputSpec.model_fields))) from None


def inputs_value(value: Any) -> Any:
    """One input (a path or a mapping), or a list of them: a list of one is that input;
    several must be of one kind and have distinct names (given, or input_1, input_2…)."""
    if not isinstance(value, list):
        return _input(value, "inputs")
    if not value:
        raise ValueError("expected at least one input: a folder path or {path, type, …}")
    if len(value) == 1:
        return _input(value[0], "inputs")
    problems: list[str] = []
    inputs: list[InputSpec] = []
    for i, item in enumerate(value):
        try:
            inputs.append(_input(item, f"inputs[{i}]"))
        except Problems as exc:
            problems += exc.problems
        except ValueError as exc:
            problems.append(f"inputs[{i}]: got {short(item)} — {exc}")
    if problems:
        raise Problems(problems)
    def kind(spec: InputSpec) -> str:
        return f"tabular {spec.format}" if spec.type == "tabular" else "files"

    for i, spec in enumerate(inputs[1:], start=1):
        if kind(spec) != kind(inputs[0]):
            problems.append(f"inputs[{i}]: got {kind(spec)} — every input of a job is of one "
                            f"kind (inputs[0] is {kind(inputs[0])}); run a job per kind")
    names = [spec.name or f"input_{i + 1}" for i, spec in enumerate(inputs)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"inputs: the name {name!r} is given twice — name each input once")
    if problems:
        raise Problems(problems)
    return [spec if spec.name else spec.model_copy(update={"name": names[i]})
            for i, spec in enumerate(inputs)]


def _model_spec(field: str, value: Mapping[str, Any]) -> ModelSpec:
    """A ``{path, name…}`` model, its problems named by ``field`` (one message each)."""
    try:
        return ModelSpec.model_validate(dict(value))
    except pydantic.ValidationError as exc:
        raise Problems(_problems(exc, field, list(ModelSpec.model_fields))) from None


def _problems(exc: pydantic.ValidationError, field: str, allowed: list[str]) -> list[str]:
    """One message per problem of an input or model, named ``field.key`` (``inputs[1].glob``,
    ``models[0].name``) instead of the class's own label."""
    problems = []
    base = "inputs" if field.startswith("inputs") else "model"
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"])
        error = err.get("ctx", {}).get("error")
        expected = EXPECTED.get(f"{base}.{where}")
        if isinstance(error, Problems):
            problems += [re.sub(r"^(inputs|model)\.", f"{field}.", p) for p in error.problems]
        elif err["type"] == "extra_forbidden":
            problems.append(unknown_field(f"{field}.{where}", allowed))
        elif err["type"] == "missing":
            problems.append(f"{field}.{where}: missing — required, "
                            f"{expected or 'e.g. path: ./data'}")
        elif not where:
            problems.append(f"{field}: got {short(err['input'])} — {EXPECTED[base]}")
        else:
            detail = str(error) if error else expected or err["msg"].lower()
            problems.append(f"{field}.{where}: got {short(err['input'])} — {detail}")
    return problems


def model_value(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError(EXPECTED["model"])
    return _model_spec("model", value) if isinstance(value, Mapping) else value


def models_value(value: Any) -> Any:
    listed = model_list(value)
    return [_model_spec(f"models[{i}]", v) if isinstance(v, Mapping) else v
            for i, v in enumerate(listed)]


