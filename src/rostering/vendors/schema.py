"""The typed model of a vendor profile (``config/vendors/<name>.yaml``), checked when the profile loads.

Top level, ``params:`` (Airflow Param keywords), ``notify:``, ``delivery:`` by ``kind`` (a discriminated union: sftp,
cers_api) with its ``guard:`` limits, and the section of the profile's ``format`` (``oneroster:``, ``cers:``,
``subgroups:``). ``validate_profile`` returns every problem of a profile at once; ``rostering.vendors.profile`` raises
them as one ``ProfileError``.

This module runs when DAG files are parsed, so it imports nothing heavy: what it must know of modules that import
pandas (the format and delivery registries of ``rostering.pipeline``, ``rostering.delivery.guard.DEFAULTS``,
``rostering.delivery.cers_api.CersApiOptions``) is restated here, and tests/test_profiles.py keeps each in step.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, create_model

from rostering.cers.options import CersSection
from rostering.oneroster.options import OneRosterSection
from rostering.vendors.strict import Amount, Count, Identifier, Problem, Strict, Text, matching, show, suggest, \
    validate_section

FORMATS = ("oneroster", "cers", "subgroups")  # rostering.pipeline.FORMATS
DELIVERY_KINDS = ("sftp", "cers_api")  # rostering.pipeline.DELIVERIES
ON_SNAPSHOT = "snapshot"  # schedule: that runs a vendor when the night's SIS snapshot is published (its Asset)
CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly", "@annually")

# rostering.delivery.guard.DEFAULTS: the change guard's limits a profile may set (delivery.guard)
GUARD_DEFAULTS: dict[str, float] = {"max_delete_pct": 10.0, "max_update_pct": 75.0, "max_add_pct": 25.0,
                                    "window_days": 7, "max_window_delete_pct": 20.0, "max_window_add_pct": 50.0}

# rostering.delivery.cers_api.CersApiOptions: field -> (type, default). Paths are text; times are seconds.
Seconds = Annotated[float, Field(gt=0)]
CERS_API_OPTIONS: dict[str, tuple[Any, Any]] = {
    "imports_path": (Text, "/groups/imports"),
    "status_path": (Text, "/imports/{id}"),
    "token_url": (Text | None, None),
    "request_timeout_s": (Seconds, 120.0),
    "max_attempts": (Count, 5),
    "backoff_s": (Amount, 2.0),
    "max_backoff_s": (Amount, 120.0),
    "first_poll_s": (Seconds, 1.0),
    "poll_interval_s": (Seconds, 5.0),
    "poll_timeout_s": (Seconds, 1800.0),
    "token_refresh_margin_s": (Amount, 60.0),
}


def _schedule(value: str) -> str:
    if value == ON_SNAPSHOT or value in CRON_PRESETS:
        return value
    from croniter import croniter  # Airflow's own cron library (already loaded by the DAG processor)

    if len(value.split()) == 5 and croniter.is_valid(value):
        return value
    hint = suggest(value, [ON_SNAPSHOT]) if " " not in value.strip() else ""
    raise ValueError(f"must be {ON_SNAPSHOT}, a cron expression of five fields (\"30 2 * * *\", district time) or "
                     f"left out (on demand only), got {show(value)}{hint}")


Schedule = Annotated[str, AfterValidator(_schedule)]


def _email(value: str) -> str:
    local, _, domain = value.partition("@")
    if not local or "." not in domain or any(ch.isspace() for ch in value) or "@" in domain:
        raise ValueError(f"must be an e-mail address, got {show(value)}")
    return value


Email = Annotated[str, AfterValidator(_email)]

GuardLimits = create_model(  # type: ignore[call-overload]
    "GuardLimits", __base__=Strict, **{name: (Amount, default) for name, default in GUARD_DEFAULTS.items()})


class SftpDelivery(Strict):
    kind: Literal["sftp"]
    conn_id: Identifier  # host, port, login, password and extra.host_key (pinned) in this Airflow connection
    remote_dir: str = ""  # "" = the login's home folder
    max_per_day: Count | None = None  # deliveries a day, counted in the district's timezone (force overrides)
    skip_unchanged: bool = False  # the same bytes as the last good delivery are not sent again (force overrides)
    guard: GuardLimits | None = None  # type: ignore[valid-type]


CersApiDelivery = create_model(  # type: ignore[call-overload]
    "CersApiDelivery", __base__=Strict,
    kind=(Literal["cers_api"], ...), conn_id=(Identifier, ...), guard=(GuardLimits | None, None),
    **CERS_API_OPTIONS,
)

Delivery = Annotated[Union[SftpDelivery, CersApiDelivery], Field(discriminator="kind")]  # type: ignore[valid-type]

JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


def _json_type(value: Any) -> Any:
    kinds = value if isinstance(value, list) else [value]
    for kind in kinds:
        if kind not in JSON_TYPES:
            raise ValueError(f"must be one of {', '.join(JSON_TYPES)} (or a list of them), got {show(kind)}"
                             f"{suggest(kind, JSON_TYPES)}")
    return value


class ParamSpec(Strict):
    """An extra trigger param: the keyword arguments of ``airflow.sdk.Param`` (JSON Schema)."""

    type: Annotated[Any, BeforeValidator(_json_type)] = None
    default: Any = None
    title: Text | None = None
    description: str | None = None
    description_md: str | None = None
    items: dict[str, Any] | None = None
    enum: list[Any] | None = None
    values_display: dict[str, Any] | None = None
    examples: list[Any] | None = None
    const: Any = None
    format: str | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None
    exclusiveMaximum: float | None = None
    multipleOf: float | None = None
    minLength: int | None = None
    maxLength: int | None = None
    minItems: int | None = None
    maxItems: int | None = None
    uniqueItems: bool | None = None
    section: str | None = None


class Notify(Strict):
    email: list[Email] = []  # empty: no mail
    on_success: bool = False  # also the run summary after each successful run
    smtp_conn_id: Identifier = "smtp_default"
    from_email: Email | None = None


ParamName = Annotated[str, matching(r"[A-Za-z_][A-Za-z0-9_]*", "a name of letters, digits and _")]


class ProfileModel(Strict):
    name: Identifier
    title: Text
    format: Literal[FORMATS]  # type: ignore[valid-type]
    dag_id: Identifier
    schedule: Schedule | None = None
    after: Identifier | None = None
    tags: list[Text] = []
    replaces_everything: bool = True
    params: dict[ParamName, ParamSpec] | None = None
    notify: Notify | None = None
    delivery: Delivery
    # the format's own section: only the one of ``format`` (checked against its model by validate_profile)
    oneroster: dict[str, Any] | None = None
    cers: dict[str, Any] | None = None
    subgroups: dict[str, Any] | None = None


SECTIONS: dict[str, type[Strict] | None] = {"oneroster": OneRosterSection, "cers": CersSection, "subgroups": None}

# keys that were profile settings once: what to do instead
RETIRED = {
    "timezone": "not a profile setting: every time is in the district's timezone, set once in config/sis.yaml "
                "(timezone:) - remove it here",
    "sis_conn_id": "no longer a profile setting: the SIS source and its connection are in config/sis.yaml - "
                   "remove it here",
}


def validate_profile(data: Any, *, file_name: str | None = None,
                     vendors: tuple[str, ...] | None = None) -> tuple[BaseModel | None, list[Problem]]:
    """The profile's model and every problem found (empty when valid).

    ``file_name``: the profile's file stem (its ``name:`` must match); ``vendors``: the profiles that exist (an
    ``after:`` must name one).
    """
    if not isinstance(data, Mapping):
        return None, [((), f"must be a mapping of settings (name:, title:, format:, delivery:, …), got {show(data)}")]
    problems: list[Problem] = [((key,), message) for key, message in RETIRED.items() if key in data]
    data = {key: value for key, value in data.items() if key not in RETIRED}
    model, found = validate_section(ProfileModel, data)
    problems += found
    if file_name is not None and isinstance(data.get("name"), str) and data["name"] != file_name:
        problems.append((("name",), f"must be the file's name, {file_name}, got {show(data['name'])}"))
    if data.get("after") and data.get("schedule"):
        problems.append((("after",), "set either after: or schedule:, not both (after: runs it when that vendor's "
                                     "delivery lands)"))
    after = data.get("after")
    if vendors is not None and isinstance(after, str) and after not in vendors:
        problems.append((("after",), f"no vendor profile {show(after)} in config/vendors/"
                                     f"{suggest(after, vendors) or ' - one of ' + ', '.join(vendors)}"))
    if isinstance(after, str) and after == data.get("name"):
        problems.append((("after",), "a profile cannot run after itself"))
    fmt = data.get("format")
    for section in SECTIONS:
        if section != fmt and data.get(section) is not None:
            problems.append(((section,), f"a section for format {section}, but this profile's format is "
                                         f"{show(fmt)} - remove it (or fix format:)"))
    if fmt in SECTIONS:
        problems += _format_problems(fmt, data.get(fmt), after if isinstance(after, str) else None)
    return (model if not problems else None), problems


def _format_problems(fmt: str, section: Any, after: str | None) -> list[Problem]:
    if section is not None and not isinstance(section, Mapping):
        return []  # reported by the top-level model (must be a mapping)
    if fmt == "subgroups":  # its own strict parser (rostering.subgroups.config): messages name the setting
        from rostering.subgroups.config import SubgroupConfig, SubgroupConfigError

        try:
            SubgroupConfig.from_options(section or {}, after=after)
        except SubgroupConfigError as exc:
            return [((), str(exc))]
        return []
    model = SECTIONS[fmt]
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    if section is None and required:
        return [((fmt,), f"required for format: {fmt} (with at least {', '.join(required)})")]
    _, problems = validate_section(model, section or {}, prefix=(fmt,))
    return problems
