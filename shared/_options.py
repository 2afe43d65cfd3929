"""The base of every options object: frozen, validated once, refusing with a ConfigurationError.

A component with many settings (the sidecar's :class:`SidecarOptions`, the relay's
:class:`RelayOptions`, the receiver's :class:`ReceiverOptions`) takes them as one frozen
pydantic model built from :class:`FrozenOptions`. Every field is checked once, when the object
is built; the parts the component wires up read their settings from it and never check them
again.

Durations: every duration field is a ``timedelta`` (:data:`OptionDuration`, read by
:func:`parse_duration` from anything a :data:`DurationLike` accepts: ``90``, ``"15m"``, a
``timedelta``). ``timedelta`` is the type :class:`RevocationSettings` already gives and users
already pass, and it says its unit; a part turns it into seconds (``total_seconds()``) only
where it does arithmetic with a clock that counts in float seconds (``time.time``,
``time.monotonic``) or hands a number to a library.

Errors: a wrong value is the :class:`ConfigurationError` the check raised, naming the field
(``poll_timeout must be positive; got 0``); a type pydantic itself refuses or an unknown
option is one too, never a pydantic ``ValidationError``. A secret's value never appears in a
message. Assigning to a field raises (frozen); ``model_copy(update=...)`` skips validation, so
build a new object instead (``type(options)(**{**options.model_dump(), ...})``), as
:meth:`FrozenOptions.replace` does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic.functional_validators import BeforeValidator

from ._arguments import require_instance
from ._duration import parse_duration
from ._errors import ConfigurationError


class FrozenOptions(BaseModel):
    """A frozen options object whose every refusal is a :class:`ConfigurationError`."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _configuration_error(type(self), err) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise ConfigurationError(
            f"{type(self).__name__} is frozen: build a new one, as options.replace({name}=...)"
        )

    @classmethod
    def layered(cls, values: dict[str, Any], overrides: dict[str, Any]) -> Self:
        """Built from ``values`` (read from the settings) with ``overrides`` winning: what
        every ``from_settings`` returns."""
        return cls(**{**values, **overrides})

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes``, validated as a new object is."""
        return type(self)(**{**self._given(), **changes})

    def _given(self) -> dict[str, Any]:
        """The fields as attributes, not dumped: objects stay themselves."""
        return {name: getattr(self, name) for name in type(self).model_fields}


OptionsT = TypeVar("OptionsT", bound=FrozenOptions)


def options_or_keywords(
    options: OptionsT | None, kind: type[OptionsT], keywords: dict[str, Any]
) -> OptionsT:
    """``options``, or ``kind`` built from ``keywords``: the one mapping of an object's keyword
    form onto its options. Both at once is refused: which would win is not obvious."""
    if options is None:
        return kind(**keywords)
    if keywords:
        raise ConfigurationError(
            f"give the settings either as options={kind.__name__}(...) or as keywords, not "
            f"both; got options= and {', '.join(sorted(keywords))}: use options.replace(...)"
        )
    return require_instance(options, kind, name="options", how=f"{kind.__name__}(...)")


def _configuration_error(model: type[BaseModel], err: ValidationError) -> ConfigurationError:
    kind = model.__name__
    first = err.errors(include_url=False, include_input=False)[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ConfigurationError):
        return cause
    where = ".".join(str(part) for part in first["loc"]) or kind
    if first["type"] == "extra_forbidden":
        return ConfigurationError(
            f"{kind} has no option {where!r}; its options are {', '.join(model.model_fields)}"
        )
    if first["type"] == "missing":
        return ConfigurationError(f"{kind} needs {where}")
    # The value is not shown: a URL or a key put in the wrong place may hold a secret.
    return ConfigurationError(f"{where}: {first['msg']}")


def _duration(value: object, info: ValidationInfo) -> timedelta:
    return parse_duration(value, name=info.field_name or "duration")


def _positive(value: object, info: ValidationInfo) -> timedelta:
    duration = _duration(value, info)
    if duration <= timedelta(0):
        raise ConfigurationError(f"{info.field_name} must be positive; got {value!r}")
    return duration


OptionDuration = Annotated[timedelta, BeforeValidator(_duration)]
"""A duration option, zero allowed: any :data:`DurationLike`, kept as a ``timedelta``."""

PositiveDuration = Annotated[timedelta, BeforeValidator(_positive)]
"""A duration option that must be more than zero."""


def count_option(minimum: int) -> BeforeValidator:
    """A count option's check: an integer (not a bool, not text) of at least ``minimum``."""
    from ._arguments import require_count

    def check(value: object, info: ValidationInfo) -> int:
        return require_count(value, name=info.field_name or "count", minimum=minimum)

    return BeforeValidator(check)
