"""The serving subcommands of ``rakuten``: serve, and user add|list|remove|deactivate for the users file."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from mlops_rakuten.core.errors import InputError

# What a bare `--follow` means. Here, not in serve/follow.py: importing that loads scikit-learn,
# seconds that every `rakuten` command would pay just to build its parser.
FOLLOW_SECONDS = 30.0


def _serve(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.server import serve

    serve(args.host, args.port, args.workers, args.access_log, args.model, args.follow, args.role)


def read_password(from_stdin: bool) -> str:
    """The password from stdin's first line, or typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    # getpass would fall back to reading a pipe with a warning, then end in EOFError; or, with a
    # terminal at hand, prompt there and ignore what was piped in.
    if sys.stdin is None or not sys.stdin.isatty():
        raise InputError(
            "standard input is not a terminal, so there is no prompt for the password: "
            "pass it on standard input with --password-stdin"
        )
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except EOFError:
        raise InputError("no password typed (end of input at the prompt)") from None
    if again != first:
        raise InputError("the two passwords differ")
    return first


def _users_file() -> Path:
    from mlops_rakuten.serve.settings import users_file

    return users_file(dict(os.environ))


def _user_add(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.users import add_user

    path = _users_file()
    replaced = add_user(path, args.name, args.role, read_password(args.password_stdin), active=not args.inactive)
    state = " (inactive)" if args.inactive else ""
    print(f"{'replaced' if replaced else 'added'} {args.role} {args.name!r}{state} in {path}")


def _user_list(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.users import list_users

    path = _users_file()
    users = list_users(path)
    if not users:
        print(f"no users in {path} (add one: rakuten user add NAME --role admin)")
        return
    rows = [("NAME", "ROLE", "ACTIVE", "TOKEN_VERSION")]
    rows += [(u.name, u.role, "yes" if u.active else "no", str(u.token_version)) for u in users]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"({len(users)} users in {path})")


def _user_remove(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.users import remove_user

    path = _users_file()
    remove_user(path, args.name)
    print(f"removed {args.name!r} from {path}; its tokens no longer work")


def _user_deactivate(args: argparse.Namespace) -> None:
    from mlops_rakuten.serve.users import deactivate_user

    path = _users_file()
    deactivate_user(path, args.name)
    print(f"deactivated {args.name!r} in {path}; its tokens no longer work (reactivate: rakuten user add {args.name})")


def add_commands(commands) -> None:
    """Add the serving subcommands to the ``rakuten`` parser's subparsers."""
    serve = commands.add_parser("serve", help="the prediction API (needs RAKUTEN_JWT_SECRET; see docs/serving.md)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    serve.add_argument("--access-log", action="store_true", help="log every request (nginx usually does)")
    serve.add_argument(
        "--model",
        metavar="REFERENCE",
        help="serve a registry version instead of the workspace model: NAME#STAGE, NAME@vX.Y.Z or "
        "NAME@latest, e.g. rakuten-classifier#prod (default: $RAKUTEN_MODEL if set)",
    )
    serve.add_argument(
        "--follow",
        type=float,
        nargs="?",
        const=FOLLOW_SECONDS,
        metavar="SECONDS",
        help=f"with --model NAME#STAGE: check the registry every SECONDS (default {FOLLOW_SECONDS:g}) and serve "
        "the version the stage moves to, without a restart (default: $RAKUTEN_FOLLOW_SECONDS, else 0)",
    )
    serve.add_argument(
        "--role",
        choices=("all", "predict", "writer"),
        help="predict: /token /predict /info (replicable); writer: /ingest /train (one per project); "
        "all: both (default: $RAKUTEN_ROLE, else all)",
    )
    serve.set_defaults(run=_serve)

    user = commands.add_parser("user", help="manage the API's users file (RAKUTEN_USERS_FILE)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser("add", help="add a user, or replace its password and role")
    add.add_argument("name")
    add.add_argument("--role", choices=["user", "admin"], default="user")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    add.add_argument("--inactive", action="store_true", help="store the user as inactive (login refused)")
    add.set_defaults(run=_user_add)
    listing = user_commands.add_parser("list", help="the users: name, role, active, token version (no hashes)")
    listing.set_defaults(run=_user_list)
    remove = user_commands.add_parser("remove", help="delete a user; its tokens stop working")
    remove.add_argument("name")
    remove.set_defaults(run=_user_remove)
    deactivate = user_commands.add_parser("deactivate", help="refuse a user's logins and revoke its tokens")
    deactivate.add_argument("name")
    deactivate.set_defaults(run=_user_deactivate)
