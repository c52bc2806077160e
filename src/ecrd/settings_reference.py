"""The settings reference (docs/settings.md): every setting, its variable, TOML key, flag, type,
default and meaning.

Generated from the Settings class (the meaning is each field's description) and the `ecrd`
command's options, so it cannot drift: `python -m ecrd.settings_reference > docs/settings.md`,
and a test checks the file is current.
"""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import click
from annotated_types import Ge, Gt, Le, Lt, MaxLen
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from ecrd.cli import main as ecrd_command
from ecrd.settings import Settings

REGENERATE = "python -m ecrd.settings_reference > docs/settings.md"


@dataclass(frozen=True)
class SettingEntry:
    name: str
    variable: str
    # The flag that sets it (None: no command has one) and the commands that take the flag
    flag: str | None
    flag_commands: tuple[str, ...]
    type_text: str
    # The default as a TOML value; None when the default is unset (no value at all)
    default_toml: str | None
    description: str

    @property
    def default_text(self) -> str:
        if self.default_toml is None:
            return "unset"
        if self.default_toml == '""':
            return "empty"
        return f"`{self.default_toml}`"


def setting_entries() -> list[SettingEntry]:
    """One entry per setting, in the order the Settings class declares them."""
    entries = []
    for name, field in Settings.model_fields.items():
        if not field.description:
            raise ValueError(f"setting {name!r} has no description for the reference")
        flag, flag_commands = _flag_of(name)
        entries.append(
            SettingEntry(
                name=name,
                variable=f"{Settings.model_config.get('env_prefix', '')}{name.upper()}",
                flag=flag,
                flag_commands=flag_commands,
                type_text=_type_text(field),
                default_toml=_default_toml(field),
                description=field.description,
            )
        )
    return entries


def settings_markdown() -> str:
    entries = setting_entries()
    lines = [
        "# Settings",
        "",
        f"Generated from `src/ecrd/settings.py` by `{REGENERATE}`;",
        "do not edit by hand.",
        "",
        "Every setting can be given in three places; a flag beats a variable beats the file",
        "beats the default:",
        "",
        "- a flag of `ecrd serve` (or `ecrd keys`), where the setting has one;",
        "- an environment variable `ECRD_<NAME>` (`ECRD_PORT=6000`); a boolean takes `true` or",
        "  `false`;",
        "- a top-level key of the TOML file `ecrd.toml` in the working folder, or of the file",
        "  `--config FILE` names (`port = 6000`).",
        "",
        "An unknown setting (a misspelt key or `ECRD_*` variable) or a bad value stops the start",
        "with one line naming it. Relative paths are relative to the working folder. Defaults",
        "are written as TOML values (empty: the empty string; unset: no value at all).",
        "",
        "| setting | variable | flag | default |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        flag = f"`{entry.flag}`" if entry.flag else ""
        lines.append(
            f"| [{entry.name}](#{entry.name}) | `{entry.variable}` | {flag} | "
            f"{entry.default_text} |"
        )
    for entry in entries:
        names = f"variable `{entry.variable}`, TOML key `{entry.name}`"
        if entry.flag:
            commands = ", ".join(f"`{command}`" for command in entry.flag_commands)
            names += f", flag `{entry.flag}` ({commands})"
        lines += [
            "",
            f"### {entry.name}",
            "",
            entry.description,
            "",
            f"- {names}",
            f"- type: {entry.type_text}",
            f"- default: {entry.default_text}",
        ]
    return "\n".join(lines) + "\n"


def _flag_of(name: str) -> tuple[str | None, tuple[str, ...]]:
    """The flag that sets `name` (`--port`) and the commands taking it (`ecrd serve`)."""
    flags: set[str] = set()
    commands: list[str] = []
    for command_name, command in ecrd_command.commands.items():
        commands += _commands_taking(name, command, f"ecrd {command_name}", flags)
    if not flags:
        return None, ()
    if len(flags) > 1:
        raise ValueError(f"setting {name!r} has several flags: {sorted(flags)}")
    return flags.pop(), tuple(commands)


def _commands_taking(name: str, command: click.Command, path: str, flags: set[str]) -> list[str]:
    """The command paths under `command` with a flag for setting `name`; a group all of
    whose commands take it is named once."""
    if isinstance(command, click.Group):
        below = [
            _commands_taking(name, sub, f"{path} {sub_name}", flags)
            for sub_name, sub in command.commands.items()
        ]
        if below and all(below):
            return [path]
        return [found for paths in below for found in paths]
    for parameter in command.params:
        if isinstance(parameter, click.Option) and parameter.name == name:
            flags.add(max(parameter.opts, key=len))
            return [path]
    return []


def _type_text(field: FieldInfo) -> str:
    annotation: Any = field.annotation
    optional = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        optional = len(members) < len(get_args(annotation))
        annotation = members[0]
    if get_origin(annotation) is Literal:
        text = "one of " + ", ".join(f"`{json.dumps(value)}`" for value in get_args(annotation))
    else:
        text = _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    text += _bounds_text(field)
    pattern = next(
        (rule.pattern for rule in field.metadata if getattr(rule, "pattern", None)), None
    )
    if pattern is not None:
        text += f", matching `{pattern}`"
    if optional:
        text += ", or unset"
    return text


_TYPE_NAMES: dict[Any, str] = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    Path: "path",
    dict[str, str]: "table of strings (in the environment: a JSON object)",
    SecretStr: "string, secret (never shown in logs, settings dumps or messages)",
}


def _bounds_text(field: FieldInfo) -> str:
    low = next((rule for rule in field.metadata if isinstance(rule, Ge)), None)
    high = next((rule for rule in field.metadata if isinstance(rule, Le)), None)
    parts = []
    if low is not None and high is not None:
        parts.append(f"from {low.ge} to {high.le}")
    for rule in field.metadata:
        if low is not None and high is not None and isinstance(rule, Ge | Le):
            continue  # said as a range
        if isinstance(rule, Ge):
            parts.append(f"at least {rule.ge}")
        elif isinstance(rule, Gt):
            parts.append(f"more than {rule.gt}")
        elif isinstance(rule, Le):
            parts.append(f"at most {rule.le}")
        elif isinstance(rule, Lt):
            parts.append(f"less than {rule.lt}")
        elif isinstance(rule, MaxLen):
            parts.append(f"at most {rule.max_length} characters")
    return "".join(f", {part}" for part in parts)


def _default_toml(field: FieldInfo) -> str | None:
    value = field.default
    if value is None:
        return None
    if isinstance(value, SecretStr):
        # A secret in the code would be everyone's secret; the reference only says "empty".
        if value.get_secret_value():
            raise ValueError("a secret setting must default to empty")
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a TOML basic string escapes as JSON does
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        pairs = ", ".join(f"{json.dumps(str(k))} = {json.dumps(v)}" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{}"
    raise ValueError(f"no TOML form for the default {value!r}")


if __name__ == "__main__":
    print(settings_markdown(), end="")
