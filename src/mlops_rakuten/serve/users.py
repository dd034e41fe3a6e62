"""The users file: name -> argon2 hash, role and active flag, as JSON readable only by its owner.

The server re-reads it when it changes, so `rakuten user add` and deactivating a user
take effect without a restart, and a deactivated user's tokens stop working within a second.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from pwdlib import PasswordHash

from mlops_rakuten.atomic import atomic_open
from mlops_rakuten.errors import InputError
from mlops_rakuten.serve.watch import FileWatch

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

    def can(self, role: str) -> bool:
        """Admins may do everything users may."""
        return self.active and (self.role == role or self.role == "admin")


def _read(path: Path) -> dict[str, dict]:
    if not path.is_file():
        return {}
    try:
        users = json.loads(path.read_text(encoding="utf-8")).get("users", {})
    except (ValueError, AttributeError):
        raise InputError(f"{path}: not a users file (expected JSON {{\"users\": {{name: {{...}}}}}})") from None
    return users


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
    users[name] = {"hash": _HASHER.hash(password), "role": role, "active": active}
    # The folder is private too: atomic_open leaves the new file 0644 until the chmod below.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with atomic_open(path) as handle:
        json.dump({"users": users}, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, 0o600)
    return replaced


class UserStore:
    """Users from the file, re-read within a second of a change."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._watch = FileWatch(path)
        self._users = _read(path)

    def _current(self) -> dict[str, dict]:
        if self._watch.changed():
            with self._lock:
                self._users = _read(self.path)
        return self._users

    def get(self, name: str) -> User | None:
        entry = self._current().get(name)
        if entry is None:
            return None
        return User(name, entry.get("role", "user"), bool(entry.get("active", True)))

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password matches and the account is active, else None."""
        entry = self._current().get(name)
        matches = _HASHER.verify(password, entry["hash"] if entry else _dummy_hash())
        user = self.get(name) if entry and matches else None
        return user if user and user.active else None
