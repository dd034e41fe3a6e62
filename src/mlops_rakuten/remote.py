"""Point DVC at a DagsHub repository's S3-compatible storage.

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
import subprocess
from pathlib import Path

from mlops_rakuten.errors import InputError

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
    result = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=root, capture_output=True)
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
