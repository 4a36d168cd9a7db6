"""Command-line flags generated from a stage's frozen config dataclass, so each default exists once.

A field becomes a flag when its metadata says how (`flag(...)`); its type, default and choices come
from the dataclass:

    @dataclasses.dataclass(frozen=True)
    class TextConfig:
        max_chinese_words: int = dataclasses.field(default=31, metadata=flag("keep captions with ..."))

    add_flags(parser, TextConfig)            # --max-chinese-words N (default: 31)
    TextConfig(**config_values(args, TextConfig))

Booleans: a field that defaults to False gives `--name` (store_true); one that defaults to True gives
the negative spelled in `flag(negative="--no-...")`. Tuples of strings give repeatable flags.

A config that belongs to a library, which knows nothing of command lines, carries no metadata; the
command line that exposes it passes the flags as `specs={"field": Flag(...)}` instead (the same
mapping to `add_flags` and `config_values`), and still takes the defaults from the dataclass.
`only=` picks some fields, for a config whose flags are spread over several argument groups.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

_FLAG = "cli_flag"


@dataclasses.dataclass(frozen=True)
class Flag:
    help: str
    name: str | None = None  # default: --field-name
    negative: str | None = None  # for booleans that default to True: the flag that turns them off
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None


def flag(help: str, **options: Any) -> dict[str, Flag]:
    """Field metadata that makes the field a command-line flag."""
    return {_FLAG: Flag(help, **options)}


Specs = Mapping[str, Flag]


def _flag_of(field: dataclasses.Field, specs: Specs | None = None) -> Flag | None:
    """The field's flag: from `specs` when it names the field, else from the field's metadata."""
    if specs is not None and field.name in specs:
        return specs[field.name]
    return field.metadata.get(_FLAG)


def _check_names(config_cls: type, names: Sequence[str] | Specs, what: str) -> None:
    """A misspelt field name would silently drop a flag: refuse it."""
    unknown = set(names) - {f.name for f in dataclasses.fields(config_cls)}
    if unknown:
        raise TypeError(f"{what} names fields that {config_cls.__name__} does not have: {sorted(unknown)}")


def _base_type(hint: Any) -> tuple[Any, bool]:
    """(the type without Optional, whether None is allowed)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def option_name(field: dataclasses.Field, specs: Specs | None = None) -> str:
    spec = _flag_of(field, specs)
    return (spec.name if spec and spec.name else "--" + field.name.replace("_", "-"))


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, config_cls: type,
              exclude: tuple[str, ...] = (), defaults: Any = None, required: tuple[str, ...] = (),
              only: Sequence[str] | None = None, specs: Specs | None = None) -> None:
    """Add a flag for every field of `config_cls` whose metadata holds a `flag(...)`, or that
    `specs` names.

    `defaults` (an instance) overrides the class's defaults, for stages whose command line starts
    from a preset. Fields named in `required` become required flags. With `only`, just those
    fields get flags (in the class's field order).
    """
    _check_names(config_cls, only or (), "only")
    _check_names(config_cls, specs or {}, "specs")
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        spec = _flag_of(field, specs)
        if spec is None or field.name in exclude or (only is not None and field.name not in only):
            continue
        default = getattr(defaults, field.name) if defaults is not None else _default(field)
        kind, _ = _base_type(hints[field.name])
        options: dict[str, Any] = {"dest": field.name, "help": spec.help}
        names = [option_name(field, specs)]
        if kind is bool:
            if default:
                if not spec.negative:
                    raise TypeError(f"{config_cls.__name__}.{field.name}: a flag that defaults to True "
                                    "needs flag(negative='--no-...')")
                names = [spec.negative]
                options.update(action="store_false", default=True)
            else:
                options.update(action="store_true", default=False)
        elif typing.get_origin(kind) is tuple:
            options.update(action="append", default=None, metavar=spec.metavar or "VALUE")
            options["help"] += " (repeatable)"
        else:
            options.update(type=kind, default=default)
            if spec.choices:
                options["choices"] = spec.choices
            else:  # named after the flag, not after the field (--host-delay HOST_DELAY)
                options["metavar"] = spec.metavar or names[0].lstrip("-").replace("-", "_").upper()
            if default is not None and default != "":
                options["help"] += f" (default: {default})"
        if field.name in required:
            options["required"] = True
            options.pop("default", None)
        parser.add_argument(*names, **options)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def config_values(args: argparse.Namespace | Mapping[str, Any], config_cls: type,
                  exclude: tuple[str, ...] = (), specs: Specs | None = None) -> dict[str, Any]:
    """The values of `config_cls`'s flag fields found in parsed `args`, ready for `config_cls(**...)`.

    Repeatable flags that were not given keep the field's default; given ones become tuples. Pass
    the `specs` that `add_flags` got.
    """
    _check_names(config_cls, specs or {}, "specs")
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    out: dict[str, Any] = {}
    for field in dataclasses.fields(config_cls):
        if _flag_of(field, specs) is None or field.name in exclude or field.name not in values:
            continue
        value = values[field.name]
        if isinstance(value, list):
            value = tuple(value)
        if value is None and isinstance(_default(field), tuple):
            continue
        out[field.name] = value
    return out
