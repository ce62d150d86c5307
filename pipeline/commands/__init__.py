"""Subcommands of `run.py`. Each module has `register(subparsers)` that sets `handler`.

`USER_ERRORS` are the exception families that mean bad input: the CLI prints their message as one
line and exits with code 2.
"""

from pipeline.config import ConfigError

COMMANDS = ()

USER_ERRORS: tuple[type[Exception], ...] = (ConfigError,)
