"""Strict configuration models and the one error a bad vendor profile raises.

Every model here forbids unknown keys and coerces nothing (``strict``): YAML's ``"1"`` is not a number, ``"yes"`` is
not a boolean, and a typo'd key is an error instead of a default. Pydantic's errors are translated into one line per
problem -- the key path, what is wrong, and the fix (``did you mean …?`` for a near-miss) -- and raised together as
one ``ProfileError`` naming the file: never a pydantic dump.
"""
from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Iterable, Literal, Mapping, Sequence, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

Problem = tuple[tuple[Any, ...], str]  # (key path, what is wrong and how to fix it)


class ProfileError(ValueError):
    """A vendor profile is wrong: every problem of the file, one per line, each naming the file and the key."""

    def __init__(self, source: str, problems: Iterable[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(dict.fromkeys(problems))  # (where, what); a problem reported twice is listed once
        lines = [f"{source}: {where}: {what}" if where else f"{source}: {what}" for where, what in self.problems]
        super().__init__("\n".join(lines))


class Strict(BaseModel):
    """A configuration section: unknown keys and values of the wrong type are errors, nothing is coerced."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def problems(self) -> list[Problem]:
        """Checks across fields (after every field validated): (path below this section, message) pairs."""
        return []


# -- value types shared by the sections ----------------------------------------------------------------------------

def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _id_text(value: Any) -> Any:
    """An id the code reads with ``str()``: text, or a whole number YAML read from an unquoted id (``101``)."""
    if isinstance(value, bool):
        raise ValueError(f"must be an id (text or a number), got {show(value)}")
    return str(value) if isinstance(value, int) else value


def matching(pattern: str, what: str) -> AfterValidator:
    """Text must match ``pattern`` (whole); the message says ``what`` it must be."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"must be {what}, got {show(value)}")
        return value
    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_not_blank)]  # non-empty text
# names, dag ids, connection ids
Identifier = Annotated[str, matching(r"[A-Za-z0-9_.-]{1,250}", "letters, digits, _ . or - (no spaces)")]
Id = Annotated[str, BeforeValidator(_id_text), AfterValidator(_not_blank)]  # SIS ids (school_id)
Count = Annotated[int, Field(ge=1)]  # a whole number, at least 1
Amount = Annotated[float, Field(ge=0)]  # a number (YAML int or float), not negative


# -- error translation ------------------------------------------------------------------------------------------

def suggest(value: Any, choices: Iterable[Any]) -> str:
    """`` - did you mean X?`` for the closest of ``choices`` (difflib), or ``""``."""
    names, text = [str(c) for c in choices], str(value)
    close = [n for n in names if len(text) >= 3 and (n.startswith(text) or text.startswith(n))]  # admin
    if len(close) != 1:
        close = difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return f" - did you mean {close[0]}?" if close and close[0] != text else ""


def show(value: Any) -> str:
    """A value as the YAML author would recognise it (short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def where(path: Sequence[Any]) -> str:
    """``delivery.guard.max_add_pct``, ``oneroster.grades[2]``, ``oneroster.extensions["users.csv"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.replace("_", "a").isalnum():
            out += f".{part}" if out else part
        else:  # a key with dots or spaces: oneroster.extensions["users.csv"]
            out += "[" + (f'"{part}"' if isinstance(part, str) else show(part)) + "]"
    return out


def _strip(tp: Any) -> Any:
    """``X`` of ``Annotated[X, ...]`` and of ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tags(tp: Any) -> dict[str, type[BaseModel]]:
    """A discriminated union of models: tag -> member (the Literal of each member's discriminator)."""
    if get_origin(tp) not in (Union, types.UnionType) or not all(_is_model(m) for m in get_args(tp)):
        return {}
    tags = {}
    for member in get_args(tp):
        for info in member.model_fields.values():
            if get_origin(_strip(info.annotation)) is Literal:
                tags.update({str(tag): member for tag in get_args(_strip(info.annotation))})
                break
    return tags


def _choices(tp: Any) -> tuple[str, ...]:
    tp = _strip(tp)
    if get_origin(tp) is Literal:
        return tuple(str(a) for a in get_args(tp))
    return tuple(_tags(tp))


def _walk(model: type[BaseModel], loc: Sequence[Any]):
    """Follow an error's location through the model: the path as written in YAML (pydantic adds the tag of a
    discriminated union, and ``[key]`` for a mapping's key), the type there, the model the last key belongs to,
    and whether the error is about a mapping's key."""
    current: Any = model
    owner: type[BaseModel] | None = None
    mapping: Any = None
    path: list[Any] = []
    for item in loc:
        tp = _strip(current)
        if item == "[key]" and mapping is not None:  # the key itself is wrong: the path is the mapping's
            return path[:-1], get_args(mapping)[0], owner, True
        if _is_model(tp):
            owner = tp
            path.append(item)
            info = tp.model_fields.get(item) if isinstance(item, str) else None
            current = info.annotation if info is not None else None
        elif _tags(tp) and isinstance(item, str) and item in _tags(tp):
            current = _tags(tp)[item]  # the union member pydantic chose: not a key of the YAML
        elif get_origin(tp) in (list, tuple, Sequence) and isinstance(item, int):
            path.append(item)
            current = get_args(tp)[0] if get_args(tp) else None
        elif get_origin(tp) in (dict, Mapping):
            path.append(item)
            mapping, current = tp, (get_args(tp)[1] if get_args(tp) else None)
        elif isinstance(item, (str, int)) and tp is None:
            path.append(item)
        # anything else is a validator's name pydantic put in the location: not a key
    return path, current, owner, False


_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "text", "list_type": "a list", "tuple_type": "a list",
    "dict_type": "a mapping (key: value)", "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)", "none_required": "null",
}


def _describe(error: dict[str, Any], target: Any, owner: type[BaseModel] | None) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "missing":
        choices = _choices(target)
        return "required" + (f" - one of {', '.join(choices)}" if choices else "")
    if kind == "extra_forbidden":
        known = list(owner.model_fields) if owner is not None else []
        hint = suggest(error["loc"][-1], known)
        return "unknown key" + (hint or (f" - allowed: {', '.join(known)}" if known else ""))
    if kind in _EXPECTED:
        message = f"must be {_EXPECTED[kind]}, got {show(value)}"
        if kind == "string_type" and isinstance(value, bool):
            message += " (YAML reads an unquoted yes/no/on/off/true/false as true or false: quote it)"
        elif kind == "string_type" and isinstance(value, (int, float)):
            message += " (quote it)"
        return message
    if kind == "literal_error":
        choices = _choices(target)
        return f"must be one of {', '.join(choices)}, got {show(value)}{suggest(value, choices)}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
                 "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}[kind]
        return f"must be {bound[0]} {ctx.get(bound[1])}, got {show(value)}"
    if kind == "too_short":
        return "must not be empty"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    return f"{error.get('msg', kind)}, got {show(value)}"


def problems_of(error: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """One (path, message) per pydantic error, in YAML's terms."""
    out: list[Problem] = []
    for item in error.errors(include_url=False):
        path, target, owner, is_key = _walk(model, item["loc"])
        if item["type"] in ("union_tag_not_found", "union_tag_invalid"):  # the discriminator: delivery.kind
            field = str((item.get("ctx") or {}).get("discriminator", "kind")).strip("'\"")
            tags = tuple(_tags(_strip(target)))
            if item["type"] == "union_tag_not_found":
                out.append(((*path, field), f"required - one of {', '.join(tags)}"))
            else:
                tag = (item.get("ctx") or {}).get("tag")
                out.append(((*path, field), f"must be one of {', '.join(tags)}, got {show(tag)}{suggest(tag, tags)}"))
            continue
        message = _describe(item, target, owner)
        out.append((tuple(path), f"key {show(item['input'])}: {message}" if is_key else message))
    return out


def validate_section(model: type[Strict], data: Any, prefix: Sequence[Any] = ()) -> tuple[Strict | None, list[Problem]]:
    """``model`` validated from ``data``, or the problems (paths prefixed); cross-field checks when fields pass."""
    try:
        section = model.model_validate(data)
    except ValidationError as exc:
        found = problems_of(exc, model)
        # list the checks across fields too: again without the keys that failed (when each has a default)
        failed = {path[0] for path, _ in found if path}
        fields = model.model_fields
        if isinstance(data, Mapping) and all(found_path for found_path, _ in found) and not any(
                fields[key].is_required() for key in failed if key in fields):
            try:
                partial = model.model_validate({k: v for k, v in data.items() if k not in failed})
            except ValidationError:
                partial = None
            if partial is not None:
                found += [(path, message) for path, message in partial.problems() if path and path[0] not in failed]
        return None, [((*prefix, *path), message) for path, message in found]
    return section, [((*prefix, *path), message) for path, message in section.problems()]
