"""The users file: name -> argon2 hash, role, active flag and token version, as JSON readable only by its owner.

The server re-reads it when it changes, so `rakuten user add`, `remove` and
`deactivate` take effect without a restart. Tokens carry the user's token
version: every change made with these commands (new password, role, deactivation)
raises it, so tokens issued before stop working within a second, even if the
user is reactivated later. Each user also has a random id, drawn when the name is
added and carried in its tokens: a name removed and added again is a new user,
and the old tokens stay dead although its token version starts again at 0. A file that is not valid is refused as a whole:
the server keeps the last good list and reports the problem on /health.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from pwdlib import PasswordHash

from mlops_rakuten.core.atomic import atomic_open
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve.watch import FileWatch

log = logging.getLogger("serve.users")
ROLES = ("user", "admin")
MIN_PASSWORD_CHARS = 8
_HASHER = PasswordHash.recommended()  # argon2id with the library's current parameters


@functools.cache
def _dummy_hash() -> str:
    """Verified when the name is unknown, so a login takes as long whether or not the user exists."""
    return _HASHER.hash("not-a-real-password")


@dataclass(frozen=True)
class User:
    name: str
    role: str
    active: bool
    token_version: int = 0  # tokens carrying another version are revoked
    id: str = ""  # random, drawn when the name is added: tokens carrying another id are revoked

    def can(self, role: str) -> bool:
        """Admins may do everything users may."""
        return self.active and (self.role == role or self.role == "admin")


def _read(path: Path) -> dict[str, dict]:
    """The users of the file (none if it does not exist); InputError naming the problem if it is not valid."""
    if not path.is_file():
        return {}
    shape = 'expected JSON {"users": {name: {"hash": "$argon2id$...", "role": "user"|"admin", "active": true}}}'
    try:
        users = json.loads(path.read_text(encoding="utf-8")).get("users", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: not a users file ({type(exc).__name__}; {shape})") from None
    if not isinstance(users, dict):
        raise InputError(f'{path}: "users" is not an object ({shape})')
    for name, entry in users.items():
        problem = None
        if not isinstance(entry, dict) or not isinstance(entry.get("hash"), str):
            problem = "has no password hash"
        elif entry.get("role", "user") not in ROLES:
            problem = f"has role {entry.get('role')!r}, expected one of {list(ROLES)}"
        elif not isinstance(entry.get("active", True), bool):
            problem = 'has an "active" that is not true or false'
        elif not isinstance(entry.get("token_version", 0), int):
            problem = 'has a "token_version" that is not a whole number'
        elif not isinstance(entry.get("id", ""), str):
            problem = 'has an "id" that is not a string'
        if problem:
            raise InputError(f"{path}: user {name!r} {problem} ({shape})")
    return users


def _write(path: Path, users: dict[str, dict]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_open(path, file_mode=0o600) as handle:  # 0600 from its first byte: the hashes stay private
        json.dump({"users": users}, handle, indent=2, sort_keys=True)
        handle.write("\n")


def _next_version(entry: dict | None) -> int:
    return entry.get("token_version", 0) + 1 if entry else 0


def add_user(path: Path, name: str, role: str, password: str, active: bool = True) -> bool:
    """Create or replace ``name``; True if it replaced an existing user."""
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise InputError(f"user name {name!r}: use letters, digits, '-', '_' or '.'")
    if role not in ROLES:
        raise InputError(f"role {role!r}: expected one of {list(ROLES)}")
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(f"password for {name!r} is shorter than {MIN_PASSWORD_CHARS} characters")
    users = _read(path)
    replaced = name in users
    # Replacing a user revokes the tokens issued to it: a new password must lock out the old sessions.
    # A new name gets a new id, so tokens of a removed user of that name never come back to life.
    previous = users.get(name)
    users[name] = {
        "hash": _HASHER.hash(password),
        "role": role,
        "active": active,
        "token_version": _next_version(previous),
        "id": (previous or {}).get("id") or secrets.token_hex(8),
    }
    _write(path, users)
    return replaced


def remove_user(path: Path, name: str) -> None:
    """Delete ``name`` (its tokens stop working with it); InputError if there is no such user."""
    users = _read(path)
    if name not in users:
        raise InputError(f"{path}: no user {name!r} (users: {', '.join(sorted(users)) or 'none'})")
    del users[name]
    _write(path, users)


def deactivate_user(path: Path, name: str) -> None:
    """Refuse ``name``'s logins and revoke its tokens, keeping its entry; InputError if there is no such user."""
    users = _read(path)
    if name not in users:
        raise InputError(f"{path}: no user {name!r} (users: {', '.join(sorted(users)) or 'none'})")
    users[name] = {**users[name], "active": False, "token_version": _next_version(users[name])}
    _write(path, users)


def list_users(path: Path) -> list[User]:
    """Every user of the file, by name (never the hashes)."""
    return [_user(name, entry) for name, entry in sorted(_read(path).items())]


def _user(name: str, entry: dict) -> User:
    return User(
        name,
        entry.get("role", "user"),
        bool(entry.get("active", True)),
        entry.get("token_version", 0),
        entry.get("id", ""),
    )


class UserStore:
    """Users from the file, re-read within a second of a change; an invalid file keeps the last good list."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._watch = FileWatch(path)
        self._users: dict[str, dict] = {}
        self.error: str | None = None  # why the file on disk is not the list in use
        self._reload()

    def _reload(self) -> None:
        try:
            users = _read(self.path)
        except InputError as exc:
            self.error = str(exc)
            log.error("users file refused, keeping the last good list of %d users: %s", len(self._users), exc)
            return
        self._users, self.error = users, None

    def _current(self) -> dict[str, dict]:
        if self._watch.changed():
            with self._lock:
                self._reload()
        return self._users

    def file_error(self) -> str | None:
        """Why the users file on disk is refused (the last good list is in use), or None."""
        self._current()
        return self.error

    def get(self, name: str) -> User | None:
        entry = self._current().get(name)
        return None if entry is None else _user(name, entry)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password matches and the account is active, else None."""
        entry = self._current().get(name)
        matches = _HASHER.verify(password, entry["hash"] if entry else _dummy_hash())
        user = self.get(name) if entry and matches else None
        return user if user and user.active else None
