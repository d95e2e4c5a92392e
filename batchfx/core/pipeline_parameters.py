"""Pipeline parameters: how a pipeline declares them (:class:`ParameterDeclaration`, read
into a :class:`Parameter`), the values a run assigns them (a pydantic model made from the
declared parameters), and the ``${{parameters.NAME}}`` placeholders of templates.

Problems are worded by :func:`~batchfx.core.spec_fields.problem_messages`, one per problem,
naming the parameter, the value and what it takes.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from functools import partial
from typing import Annotated, Any, Literal, get_args

import pydantic
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from batchfx.core.errors import SpecError
from batchfx.core.spec_fields import Problems, error_path, problem_messages, short

__all__ = [
    "Parameter",
    "ParameterDeclaration",
    "ParameterType",
    "coerce_parameter",
    "declared_parameters",
    "parameter_text",
    "placeholders",
    "render",
    "validate_assignments",
]

ParameterType = Literal["string", "integer", "number", "boolean"]

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}")
_PARAMETER = re.compile(r"^\s*parameters\.([A-Za-z_][A-Za-z0-9_]*)\s*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_TYPES = "expected string, integer, number or boolean"


@pydantic.dataclasses.dataclass(frozen=True, config=ConfigDict(strict=True))
class Parameter:
    """A declared pipeline parameter; ``required`` when it has no default."""

    name: str
    type: ParameterType
    default: Any = None
    required: bool = True
    description: str = ""

    def to_record(self) -> dict[str, Any]:
        """The declaration as published: ``{type, default?, description?}``."""
        record: dict[str, Any] = {"type": self.type}
        if not self.required:
            record["default"] = self.default
        if self.description:
            record["description"] = self.description
        return record


def coerce_parameter(parameter: Parameter, value: Any) -> Any:
    """``value`` as the parameter's type; ValueError names the parameter, value and type."""
    kind, wrong = parameter.type, f"{parameter.type} parameter {parameter.name!r}: got {value!r}"
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(f"{wrong} — expected true or false")
    if isinstance(value, bool):  # a bool is an int to Python, never to a pipeline
        raise ValueError(f"{wrong} — expected {_EXAMPLES[kind]}")
    if kind == "string":
        if isinstance(value, str | int | float):
            return str(value)
    elif kind == "integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.match(value):
            return int(value)
    elif isinstance(value, int | float | str):
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return int(number) if isinstance(value, int) else number
    raise ValueError(f"{wrong} — expected {_EXAMPLES[kind]}")


_EXAMPLES = {"string": "a string", "integer": "a whole number such as 5 (or \"5\")",
             "number": "a number such as 0.5 (or \"0.5\")", "boolean": "true or false"}


def _known_type(value: Any) -> Any:
    if value not in get_args(ParameterType):
        raise ValueError(_TYPES)
    return value


def _typed_default(value: Any, info: pydantic.ValidationInfo) -> Any:
    """The default as the parameter's type (unchecked when the type is not known)."""
    kind = info.data.get("type")
    if value is None or kind is None:
        return value
    name = (info.context or {}).get("parameter", "")
    try:
        return coerce_parameter(Parameter(name, kind), value)
    except ValueError as exc:
        raise Problems([f"parameters.{name}.default: {exc}"]) from None


class ParameterDeclaration(BaseModel):
    """A parameter as a pipeline declares it: ``{type, default?, description?}`` (the
    parameter's name, in the validation context, names it in problems)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    type: Annotated[ParameterType, BeforeValidator(_known_type)]
    default: Annotated[Any, pydantic.AfterValidator(_typed_default)] = None
    description: Annotated[str, BeforeValidator(lambda v: str(v or ""))] = ""

    def parameter(self, name: str) -> Parameter:
        """The parameter declared under ``name``: required when it has no default."""
        return Parameter(name, self.type, self.default, self.default is None, self.description)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _type_given(cls, data: Any) -> Any:
        # A declaration without a type is refused as a type of None.
        return {"type": None, **data} if isinstance(data, Mapping) else data


def declared_parameters(value: object) -> tuple[dict[str, Parameter], list[str]]:
    """The parameters a pipeline declares (``{name: {type, default?, description?}}``) that
    are valid, and one message per problem of the others."""
    declared = value or {}
    if not isinstance(declared, Mapping):
        return {}, [f"parameters: got {short(declared)} — expected a mapping of name to "
                    "{type, default?, description?}"]
    parameters: dict[str, Parameter] = {}
    problems: list[str] = []
    for name, given in declared.items():
        if not isinstance(name, str) or not _IDENT.match(name):
            problems.append(f"parameters: got name {short(name)} — expected letters, digits "
                            "and '_', not starting with a digit, e.g. top_k")
        elif not isinstance(given, Mapping):
            problems.append(f"parameters.{name}: got {short(given)} — expected "
                            "{type: integer, default: 5}")
        else:
            found, declaration = _declaration(name, given)
            problems += found
            if declaration is not None:
                parameters[name] = declaration.parameter(name)
    return parameters, problems


def _declaration(name: str, given: Mapping[str, Any]
                 ) -> tuple[list[str], ParameterDeclaration | None]:
    """The problems of a declaration, and the declaration: keys it may not have are
    reported, and the parameter declared all the same."""
    try:
        return [], ParameterDeclaration.model_validate(dict(given), context={"parameter": name})
    except pydantic.ValidationError as exc:
        problems = problem_messages(
            exc, prefix=f"parameters.{name}", expected={}, unknown_first=True,
            unknown=lambda p: f"{p}: unknown field — allowed: type, default, description")
    known = {k: v for k, v in given.items() if k in ParameterDeclaration.model_fields}
    try:
        return problems, ParameterDeclaration.model_validate(known, context={"parameter": name})
    except pydantic.ValidationError:
        return problems, None


def _assigned(parameter: Parameter, value: Any) -> Any:
    """An assignment as the parameter's type; null means its default."""
    if value is None:
        if parameter.required:
            raise Problems([f"{parameter.type} parameter {parameter.name!r}: missing — it has "
                            "no default; assign it a value"])
        return parameter.default
    try:
        return coerce_parameter(parameter, value)
    except ValueError as exc:
        raise Problems([str(exc)]) from None


def _unknown_parameter(name: object, declared: Mapping[str, Parameter]) -> str:
    allowed = ", ".join(declared) or "none (this pipeline declares no parameters)"
    close = difflib.get_close_matches(str(name), list(declared), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"parameter {name!r}: unknown — {hint}allowed parameters are: {allowed}"


def validate_assignments(declared: Mapping[str, Parameter],
                         assignments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values of every declared parameter: assignments checked, defaults filled.

    Strings are accepted for numbers and booleans, as Azure Data Factory sends every
    value: ``"5"`` for an integer, ``"0.5"`` for a number, ``"true"``/``"false"`` (any
    case) for a boolean; numbers are accepted for strings. A null assignment means "use
    the default". SpecError lists every unknown, mistyped or missing parameter.
    """
    # One field per declared parameter (named by alias: a parameter may be called "json").
    fields: dict[str, Any] = {
        f"p{i}": (Annotated[Any, BeforeValidator(partial(_assigned, parameter))],
                  Field(None, alias=name, validate_default=True))
        for i, (name, parameter) in enumerate(declared.items())}
    model: type[BaseModel] = pydantic.create_model(
        "ParameterAssignments", __config__=ConfigDict(extra="forbid"), **fields)
    given = dict(assignments or {})
    try:
        values: dict[str, Any] = model.model_validate(given).model_dump(by_alias=True)
        return values
    except pydantic.ValidationError as exc:
        keys = {error_path((k,)) if isinstance(k, int) else str(k): k for k in given}
        raise SpecError(problem_messages(
            exc, unknown=lambda p: _unknown_parameter(keys.get(p, p), declared),
            unknown_first=True)) from None


def parameter_text(value: Any) -> str:
    """A parameter's value as text (a command-line argument, an environment variable, a
    placeholder's replacement): booleans as YAML writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: Any, values: Mapping[str, Any], *, path: str = "") -> Any:
    """``template`` with each ``${{parameters.NAME}}`` replaced; SpecError on unknown names.

    A string that is exactly one placeholder becomes the typed value; placeholders inside
    longer strings are replaced by the value's text (booleans as ``true``/``false``).
    """
    problems: list[str] = []
    result = _render(template, values, path, problems)
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    return result


def _render(template: Any, values: Mapping[str, Any], path: str, problems: list[str]) -> Any:
    if isinstance(template, Mapping):
        return {k: _render(v, values, f"{path}.{k}".lstrip("."), problems)
                for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [_render(v, values, f"{path}[{i}]", problems) for i, v in enumerate(template)]
    if not isinstance(template, str) or "${{" not in template:
        return template
    known = ", ".join(values) or "none"
    matches = list(_EXPRESSION.finditer(template))
    names: list[str] = []
    for match in matches:
        found = _PARAMETER.match(match.group(1))
        if found is None:
            problems.append(f"{path}: {match.group(0)!r} is not supported — only "
                            "${{parameters.NAME}} placeholders are")
        elif found.group(1) not in values:
            problems.append(f"{path}: {match.group(0)!r} names no declared parameter — "
                            f"declared parameters are: {known}")
        else:
            names.append(found.group(1))
    if len(names) != len(matches):
        return template
    if len(matches) == 1 and matches[0].span() == (0, len(template)):
        return values[names[0]]
    texts = iter(parameter_text(values[n]) for n in names)
    return _EXPRESSION.sub(lambda _: next(texts), template)


def placeholders(template: Any) -> set[str]:
    """The parameter names a template's ``${{parameters.NAME}}`` placeholders use."""
    if isinstance(template, Mapping):
        return set().union(*(placeholders(v) for v in template.values()))
    if isinstance(template, list | tuple):
        return set().union(*(placeholders(v) for v in template))
    if not isinstance(template, str):
        return set()
    return {m.group(1) for e in _EXPRESSION.finditer(template)
            if (m := _PARAMETER.match(e.group(1)))}
