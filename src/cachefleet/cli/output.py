"""``--output table|json`` (and its shorthand ``--json``) for every command that prints a result."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json")


def output_option(what: str) -> Callable[[F], F]:
    """Adds ``--output/-o table|json`` and ``--json``; the command receives ``as_json``."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, output: str, **kwargs: Any) -> Any:
            return command(*args, as_json=output == "json", **kwargs)

        # Both options fill one parameter: the one given on the command line wins over the default.
        with_json = click.option("--json", "output", flag_value="json",
                                 help=f"Print {what} as JSON (the same as --output json).")(wrapper)
        return click.option("--output", "-o", "output", type=click.Choice(FORMATS), default="table",
                            show_default=True, help=f"How to print {what}.")(with_json)  # type: ignore[return-value]

    return decorate
