"""The building blocks of the declared configuration: the section settings and the field types.

Every section of the file is a frozen pydantic dataclass declared with `SECTION`: its fields are
snake_case in Python and camelCase in the file (`self_check_port` is `selfCheckPort`), unknown
keys are refused. Each field type below checks the exact JSON type (no coercion: `"7"` is not a
port, `true` is not a number) and says what is wrong in the words of the error lines
(`must be a port number 1-65535, got 0`); the JSON schema is pydantic's for the inner type.

Validation context (a dict, see settings.parse_config): `namespace` is the controller namespace
(what a Secret reference without one means), `warnings` collects `path: message` lines for
things that work but look wrong.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Annotated, Any, NoReturn, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass
from pydantic_core import InitErrorDetails

from certbotk8s.core.config.durations import parse_duration
from certbotk8s.core.sources.names import (
    InvalidHostname,
    is_dns1123_label,
    is_dns1123_subdomain,
    normalize_host,
)

T = TypeVar("T")
SECTION = ConfigDict(
    extra="forbid", alias_generator=to_camel, validate_by_alias=True, validate_by_name=True,
    defer_build=True,  # the schema is built at the first validation, not at import
)


def _check(test: Callable[[Any], bool], message: str) -> Callable[[Any], Any]:
    """A before-validator: `value` as it is when `test` holds, else ValueError(message)."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(message.format(got=repr(value)))
        return value

    return check


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text(value: object) -> str:
    """A non-empty string, stripped (the check behind `Text`)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value.strip()


def _list(value: object) -> object:
    if isinstance(value, tuple):  # built in Python, not read from the file
        return value
    if value is None:  # `team-a:` under hostPatterns: no patterns
        return ()
    if not isinstance(value, list):
        raise ValueError(f"must be a list, got {type(value).__name__}")
    return value


def _item(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a string, got {value!r}")
    return value


def _sorted_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


def whole(low: int, high: int, message: str) -> BeforeValidator:
    """An integer `low`..`high`; `message` says what it must be (before `, got ...`)."""
    return BeforeValidator(_check(lambda v: _is_int(v) and low <= v <= high,
                                  message + ", got {got}"))


def _seconds(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"must be a positive number of seconds, got {value!r}")
    return timedelta(seconds=value)


def _namespace(value: str) -> str:
    if not is_dns1123_label(value):
        raise ValueError(f"{value!r} is not a valid namespace name")
    return value


def _secret_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"{value!r} is not a valid Secret name")
    return value


def _duration(value: object) -> object:
    return value if isinstance(value, timedelta) else parse_duration(text(value))


def _suffix(value: str) -> str:
    name = value.strip().lower().strip(".")
    if not is_dns1123_subdomain(name):
        raise ValueError(f"{name!r} is not a DNS suffix")
    return name


def _zone(value: str) -> str:
    zone = value.strip().rstrip(".").lower()
    if not is_dns1123_subdomain(zone):
        raise ValueError(f"{zone!r} is not a DNS zone name")
    return zone


def _host_pattern(value: str) -> str:
    try:
        return normalize_host(value)
    except InvalidHostname as e:
        raise ValueError(str(e)) from None


def _network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"not a network like 10.0.0.0/8: {value!r}") from None


_HOSTPORT = (re.compile(r"^\[([0-9a-fA-F:.]+)\](?::(\d+))?$"),
             re.compile(r"^([^:\s\[\]]+)(?::(\d+))?$"))


def split_hostport(server: str, port: int = 53) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` split; ValueError with the error line's message."""
    match = _HOSTPORT[0].match(server) or _HOSTPORT[1].match(server)
    if match is None:
        raise ValueError(f"must be host or host:port, got {server!r}")
    port = int(match.group(2)) if match.group(2) else port
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range in {server!r}")
    return match.group(1), port


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _endpoint(value: str) -> str:
    return join_hostport(*split_hostport(value.strip()))


def _at_most_600(value: timedelta) -> timedelta:
    if value > timedelta(seconds=600):
        raise ValueError("must be at most 600 seconds")
    return value


def one_of(*values: str) -> BeforeValidator:
    """Before-validator: one of `values` (pair it with `enum_schema(*values)`)."""
    known = ", ".join(values)
    return BeforeValidator(_check(lambda v: v in values, "must be one of " + known + ", got {got}"))


def enum_schema(*values: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


Text = Annotated[str, BeforeValidator(text)]
Flag = Annotated[bool, BeforeValidator(_check(lambda v: isinstance(v, bool),
                                              "must be true or false, got {got}"))]
Port = Annotated[int, whole(1, 65535, "must be a port number 1-65535")]
_NUMBER = WithJsonSchema({"type": "number", "exclusiveMinimum": 0})
Seconds = Annotated[timedelta, BeforeValidator(_seconds), _NUMBER]
Timeout = Annotated[timedelta, BeforeValidator(_seconds), AfterValidator(_at_most_600), _NUMBER]
Duration = Annotated[timedelta, BeforeValidator(_duration), WithJsonSchema({"type": "string"})]
_LIST = BeforeValidator(_list)
_UNIQUE = AfterValidator(_sorted_unique)
Texts = Annotated[tuple[Annotated[str, BeforeValidator(_item)], ...], _LIST]
Namespace = Annotated[Text, AfterValidator(_namespace)]
Namespaces = Annotated[tuple[Annotated[str, BeforeValidator(_item), AfterValidator(_namespace)],
                             ...], _LIST, _UNIQUE]
SecretName = Annotated[Text, AfterValidator(_secret_name)]
Suffixes = Annotated[tuple[Annotated[str, BeforeValidator(_item), AfterValidator(_suffix)], ...],
                     _LIST, _UNIQUE]
Zones = Annotated[tuple[Annotated[str, BeforeValidator(_item), AfterValidator(_zone)], ...],
                  _LIST, _UNIQUE]
HostPatterns = Annotated[tuple[Annotated[str, BeforeValidator(_item),
                                         AfterValidator(_host_pattern)], ...], _LIST, _UNIQUE]
Networks = Annotated[tuple[Annotated[str, BeforeValidator(_item), AfterValidator(_network)],
                           ...], _LIST]
Endpoint = Annotated[Text, AfterValidator(_endpoint)]  # host:port, :53
Endpoints = Annotated[tuple[Annotated[str, BeforeValidator(_item), AfterValidator(_endpoint)],
                            ...], _LIST]


def controller_namespace(info: ValidationInfo) -> str:
    """The namespace a Secret reference without one is in (the validation context's)."""
    context = info.context or {}
    return str(context.get("namespace", "certbotk8s"))


def warn(info: ValidationInfo, line: str) -> None:
    """Note a `path: message` warning in the validation context (settings.Config.warnings)."""
    if info.context is not None:
        info.context.setdefault("warnings", []).append(line)


@cache
def _null_means_none(cls: Any) -> frozenset[str]:
    """The keys of `cls` whose default is None: a null there is kept (and read as None, or as
    empty where the field says so); any other null is as if the key were left out."""
    return frozenset(info.alias or name for name, info in cls.__pydantic_fields__.items()
                     if info.default is None and info.default_factory is None)


@dataclass(frozen=True, config=SECTION)
class Section:
    """The base of every section: a key written without a value (`email:`) counts as left out,
    like a section written without a body (`solver:`)."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_left_out(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, dict):
            return data
        section: Any = cls
        kept = _null_means_none(section)
        return {k: v for k, v in data.items() if v is not None or k in kept}


def _none_is_empty(value: Any) -> Any:
    return () if value is None else value


# A scope written without a value (`namespaces:`) is empty, as before (nothing in scope), not
# left out (no scope): a missing list must not open what a written one closes.
EMPTY_IF_NULL = BeforeValidator(_none_is_empty)


def namespace_optional(schema: dict[str, Any]) -> None:
    """In the file a Secret reference may leave out `namespace` (the controller's)."""
    schema["required"] = [k for k in schema.get("required", []) if k != "namespace"]


@dataclass(frozen=True, config=ConfigDict(**SECTION, json_schema_extra=namespace_optional))
class SecretKeyRef(Section):
    """One key of a Kubernetes Secret. `namespace` defaults to the controller's namespace."""

    namespace: Namespace
    name: SecretName
    key: Text


def in_controller_namespace(value: object, info: ValidationInfo) -> object:
    """Before-validator for a Secret reference: no `namespace` means the controller's."""
    if isinstance(value, dict) and value.get("namespace") is None:
        return {**value, "namespace": controller_namespace(info)}
    return value


SecretRefField = Annotated[SecretKeyRef, BeforeValidator(in_controller_namespace)]


def unknown_key(key: str, value: object) -> NoReturn:
    """Refuse `key` as unknown, like the keys pydantic refuses (the line lists the known ones)."""
    raise ValidationError.from_exception_data("config", [InitErrorDetails(
        type="unexpected_keyword_argument", loc=(key,), input=value)])


def fail_at(loc: tuple[str | int, ...], message: str, value: object = None) -> NoReturn:
    """Raise one error line at `loc` below the field or section being validated."""
    raise ValidationError.from_exception_data("config", [InitErrorDetails(
        type="value_error", loc=loc, input=value, ctx={"error": ValueError(message)})])


def relocated(errors: ValidationError, prefix: tuple[str | int, ...]) -> list[InitErrorDetails]:
    """The error lines of `errors`, each placed below `prefix`."""
    return [InitErrorDetails(type=e["type"], loc=(*prefix, *e["loc"]), input=e["input"],
                             ctx=e.get("ctx", {})) for e in errors.errors()]


def named_pairs(check_key: Callable[[str], str],
                check_value: Callable[[Any, ValidationInfo], Any]) -> Callable[..., Any]:
    """Plain validator: a mapping in the file (keys the user chooses) as sorted (key, value)
    pairs; every bad entry is one error line at its key. A tuple (built in Python) is kept."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, tuple):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping, got {type(value).__name__}")
        pairs: list[tuple[str, Any]] = []
        errors: list[InitErrorDetails] = []
        for key, raw in value.items():
            try:
                pairs.append((check_key(str(key)), check_value(raw, info)))
            except ValidationError as e:
                errors += relocated(e, (str(key),))
            except ValueError as e:
                errors.append(InitErrorDetails(type="value_error", loc=(str(key),), input=raw,
                                               ctx={"error": e}))
        if errors:
            raise ValidationError.from_exception_data("config", errors)
        return tuple(sorted(pairs, key=lambda pair: pair[0]))

    return validate


def secret_ref(value: Any, info: ValidationInfo) -> SecretKeyRef:
    """A Secret reference read from the file (a mapping), in the controller namespace unless
    it names one."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"must be a mapping, got {type(value).__name__}")
    return SecretKeyRef(**in_controller_namespace(value, info))  # type: ignore[arg-type]


@cache
def _adapter(cls: Any) -> TypeAdapter[Any]:
    return TypeAdapter(cls)


def read_as(cls: type[T], value: object, info: ValidationInfo) -> T:
    """`value` (from the file) validated as a `cls` section, in the same context: for a field
    whose Python form differs from its file form (see its PlainValidator)."""
    section: Any = cls
    result: T = _adapter(section).validate_python(value, context=info.context, by_alias=True,
                                                  by_name=False)
    return result


def left_out() -> Any:
    """The default of a sub-section: `{}` validated like the file's (each key its default),
    through the parent's own validator (an instance as default would build another one)."""
    return Field(default_factory=dict, validate_default=True)
