"""One kind of error for bad input, reported as one line and a non-zero exit."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Callable


class InputError(Exception):
    """Bad input data or params: the message names the file/column/key and what was expected."""


def exit_on_input_error(main: Callable[..., None]) -> Callable[..., None]:
    """Run a command's ``main``; turn an InputError into ``error: ...`` on stderr and exit 1."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    return wrapper


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
