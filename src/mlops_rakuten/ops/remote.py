"""Point DVC at a DagsHub repository's S3-compatible storage; find and probe the default remote.

DagsHub serves DVC data at bucket ``s3://dvc`` behind ``https://dagshub.com/<owner>/<repo>.s3`` and takes the
user's token as both access key and secret. The remote's URL and endpoint go to the committed ``.dvc/config``
(teammates share them); the token goes only to the git-ignored ``.dvc/config.local``.

The config is written through DVC's own ``Config.edit``, the code behind ``dvc remote add -d -f`` and
``dvc remote modify [--local]``, so the files look exactly as those commands leave them, but the token is
never a command-line argument (any local user can read another process's arguments) nor printed.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.commands import run

REMOTE = "origin"
BUCKET_URL = "s3://dvc"
TOKEN_ENV = "DAGSHUB_TOKEN"
# DagsHub user, organisation and repository names: letters, digits, '-', '_' and '.'.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def dagshub_endpoint(owner: str, repo: str) -> str:
    for label, value in (("owner", owner), ("repo", repo)):
        if not _NAME.match(value or ""):
            raise InputError(f"DagsHub {label} {value!r}: expected a name like 'my-team' (letters, digits, - _ .)")
    return f"https://dagshub.com/{owner}/{repo}.s3"


def read_token() -> str:
    """The token from $DAGSHUB_TOKEN, else typed at a prompt that does not echo it."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        try:
            token = getpass.getpass(f"DagsHub token (input hidden; or set {TOKEN_ENV}): ").strip()
        except EOFError:
            token = ""
    if not token:
        raise InputError(f"no DagsHub token: set {TOKEN_ENV} or type it at the prompt")
    return token


def _check_local_config_ignored(root: Path) -> None:
    # The token must never be staged by a `git add -A`: refuse to write it where git would see it.
    result = run(["git", "check-ignore", "-q", ".dvc/config.local"], root, check=False)
    if result.returncode == 1:
        raise InputError(f"{root / '.dvc/config.local'} is not git-ignored: add /config.local to .dvc/.gitignore")


def configure_remote(root: Path, endpoint: str, token: str) -> None:
    """Make ``origin`` (``s3://dvc`` at ``endpoint``) the default remote of the DVC repo at ``root``.

    Running it again replaces the remote's settings with the same values: the committed config is unchanged.
    """
    from dvc.config import Config, ConfigError

    dvc_dir = Path(root) / ".dvc"
    if not dvc_dir.is_dir():
        raise InputError(f"{Path(root).resolve()}: not a DVC repository (no .dvc folder): run this in the project")
    _check_local_config_ignored(Path(root))
    # Owner-only before the token is written: other users of a shared machine must not read it.
    local = dvc_dir / "config.local"
    local.touch(mode=0o600)
    local.chmod(0o600)
    config = Config(dvc_dir=str(dvc_dir), validate=False)
    try:
        with config.edit("repo") as conf:  # dvc remote add --default --force origin s3://dvc + endpointurl
            conf["remote"][REMOTE] = {"url": BUCKET_URL, "endpointurl": endpoint}
            conf["core"]["remote"] = REMOTE
        with config.edit("local") as conf:  # dvc remote modify --local origin access_key_id / secret_access_key
            # The url again: DVC validates every git revision it reads (data status, metrics diff, exp show)
            # merged with config.local, and in revisions older than the remote a section holding only
            # credentials is "a remote without url" that fails to load.
            section = conf["remote"].setdefault(REMOTE, {})
            section.update(url=BUCKET_URL, access_key_id=token, secret_access_key=token)
    except ConfigError as exc:
        raise InputError(f"{dvc_dir}: {exc}") from None


def configure_dagshub(owner: str, repo: str, root: Path = Path(".")) -> str:
    """Configure the DagsHub remote of ``owner/repo`` with the user's token; return the endpoint."""
    endpoint = dagshub_endpoint(owner, repo)
    configure_remote(root, endpoint, read_token())
    return endpoint


# How long `make run` and `make data-status` wait for the remote's host to accept a TCP connection.
# A reachable host answers in well under a second; without it dvc would spend its retries (~47 s).
CONNECT_TIMEOUT = 3.0
# Where DVC sends a remote's requests when its config names no endpoint: scheme -> (host or None, port).
_DEFAULT_HOSTS = {
    "s3": ("s3.amazonaws.com", 443),
    "gs": ("storage.googleapis.com", 443),
    "http": (None, 80),
    "https": (None, 443),
    "webdav": (None, 80),
    "webdavs": (None, 443),
    "ssh": (None, 22),
}


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint: str | None  # what a person would recognise: the endpoint URL, or the remote's URL
    address: tuple[str, int] | None  # the host and port to try; None for a folder or an unknown scheme


def default_remote(root: Path = Path(".")) -> Remote | None:
    """The default DVC remote (from every config level DVC reads), or None when there is none."""
    from dvc.config import Config, ConfigError

    try:
        config = Config(dvc_dir=str(Path(root) / ".dvc"))
    except ConfigError as exc:
        raise InputError(f"{Path(root) / '.dvc'}: {exc}") from None
    name = config["core"].get("remote")
    settings = config["remote"].get(name) if name else None
    if not settings:
        return None
    url, endpoint = settings["url"], settings.get("endpointurl")
    parsed = urlsplit(endpoint or url)
    default_host, default_port = _DEFAULT_HOSTS.get(parsed.scheme, (None, None))
    host = parsed.hostname if endpoint or default_host is None else default_host
    port = parsed.port or default_port
    address = (host, port) if host and port else None
    return Remote(name, url, endpoint or url, address)


def reachable(address: tuple[str, int], timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether ``address`` accepts a TCP connection within ``timeout`` seconds, name lookup included."""
    accepted = []

    def connect() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                accepted.append(True)
        except OSError:
            pass

    # A thread, because the name lookup has no timeout of its own (it can hang with no network).
    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(timeout)
    return bool(accepted)


def data_status(root: Path = Path(".")) -> int:
    """`make data-status`: the workspace against the local cache, then the cache against the remote."""
    local = run(["dvc", "data", "status"], root, check=False, capture=False)
    remote = default_remote(root)
    if remote is None:
        print(
            "No DVC remote is configured, so only the local status is shown (workspace against the local cache).\n"
            "Add one to share data and models: make dagshub-remote OWNER=<user or org> REPO=<repo> (DagsHub), "
            "or dvc remote add -d origin <url> (s3://bucket/path, ssh://host/path, a shared folder); "
            "then dvc push."
        )
        return local.returncode
    if remote.address is not None and not reachable(remote.address):
        print(f"cannot reach {remote.endpoint}: only the local status is shown (remote '{remote.name}' not compared)")
        return 1
    return run(["dvc", "status", "--cloud"], root, check=False, capture=False).returncode or local.returncode
