"""How a command ends: bad input as one line and a non-zero exit; success without the interpreter's teardown."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import Any, Callable


class InputError(Exception):
    """Bad input data or params: the message names the file/column/key and what was expected."""


def exit_on_input_error(main: Callable[..., None]) -> Callable[..., None]:
    """Run a command's ``main``; turn an InputError into ``error: ...`` on stderr and exit 1."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            return main(*args, **kwargs)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    return wrapper


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def exit_skipping_teardown() -> None:
    """End a stage process that succeeded: flush, then leave without tearing the interpreter down.

    Unloading scikit-learn, pandas and matplotlib takes 0.4-0.7 s per process,
    paid by every stage of every ``dvc repro`` and ``dvc exp run``. Every output
    is closed and renamed into place by then, so nothing is lost.

    Not for a process that ran joblib's worker processes (featurize): only the
    normal exit stops them, else they hold the stage's output pipe open for minutes.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
