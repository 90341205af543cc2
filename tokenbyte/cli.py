"""The base of the operator CLI: bad input gives one clear stderr line, exit 2, and no change."""

import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser


class OperatorCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Parse errors raise CommandError (caught below) instead of printing usage + error.
        self._called_from_command_line = False
        return super().create_parser(prog_name, subcommand, **kwargs)

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as exc:  # raised while parsing; handle()'s errors Django prints
            self.stderr.write(f"CommandError: {str(exc).removeprefix('Error: ')}")
            sys.exit(2)


def validation_message(exc: ValidationError) -> str:
    return "; ".join(exc.messages)


def fail(message: str) -> CommandError:
    return CommandError(message, returncode=2)
