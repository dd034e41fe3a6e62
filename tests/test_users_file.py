"""The users file (serve/users.py) without a server: what is refused, what is written, who logs in.

Hashing uses argon2id with tiny costs (the rules tested are the module's, not argon2's), so a test
takes milliseconds instead of a 64 MiB, tens-of-milliseconds hash per password.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

import mlops_rakuten.serve.users as users_module
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.serve.users import (
    MIN_PASSWORD_CHARS,
    User,
    UserStore,
    add_user,
    deactivate_user,
    list_users,
    remove_user,
)
from mlops_rakuten.serve.watch import FileWatch

SHAPE = 'expected JSON {"users": {name: {"hash": "$argon2id$...", "role": "user"|"admin", "active": true}}}'


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    monkeypatch.setattr(
        users_module, "_HASHER", PasswordHash((Argon2Hasher(time_cost=1, memory_cost=64, parallelism=1),))
    )
    users_module._dummy_hash.cache_clear()
    yield
    users_module._dummy_hash.cache_clear()


def stored(path: Path) -> dict:
    return json.loads(path.read_text())["users"]


def test_can_holds_the_role_or_admin_and_needs_active():
    assert User("u", "user", True).can("user") and not User("u", "user", True).can("admin")
    assert User("a", "admin", True).can("user") and User("a", "admin", True).can("admin")
    assert not User("a", "admin", False).can("user") and not User("u", "user", False).can("user")


def test_add_writes_a_private_sorted_file_with_a_hash_a_version_and_an_id(tmp_path):
    path = tmp_path / "secrets" / "deeper" / "users.json"
    assert add_user(path, "ann.b-c_1", "admin", "x" * MIN_PASSWORD_CHARS) is False
    entry = stored(path)["ann.b-c_1"]
    assert entry["hash"].startswith("$argon2id$") and "x" * MIN_PASSWORD_CHARS not in path.read_text()
    assert (entry["role"], entry["active"], entry["token_version"]) == ("admin", True, 0)
    assert len(entry["id"]) == 16 and int(entry["id"], 16) >= 0  # 8 random bytes in hex
    assert path.read_text() == json.dumps({"users": stored(path)}, indent=2, sort_keys=True) + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert add_user(path, "bo", "user", "y" * 9, active=False) is False  # the folder exists already
    assert stored(path)["bo"]["active"] is False and stored(path)["bo"]["id"] != entry["id"]


def test_replacing_a_user_raises_its_version_and_keeps_its_id(tmp_path):
    path = tmp_path / "users.json"
    add_user(path, "ann", "user", "password-1")
    first = stored(path)["ann"]
    assert add_user(path, "ann", "admin", "password-2") is True
    second = stored(path)["ann"]
    assert second["token_version"] == 1 and second["id"] == first["id"] and second["hash"] != first["hash"]
    add_user(path, "ann", "admin", "password-3")
    assert stored(path)["ann"]["token_version"] == 2


@pytest.mark.parametrize(
    "name, role, password, message",
    [
        ("", "user", "long-enough", "user name '': use letters, digits, '-', '_' or '.'"),
        ("a b", "user", "long-enough", "user name 'a b': use letters"),
        ("a/b", "user", "long-enough", "user name 'a/b': use letters"),
        ("-", "user", "long-enough", "user name '-': use letters"),  # no letter or digit at all
        ("_", "user", "long-enough", "user name '_': use letters"),
        (".", "user", "long-enough", "user name '.': use letters"),
        ("ann", "root", "long-enough", "role 'root': expected one of ['user', 'admin']"),
        ("ann", "user", "x" * (MIN_PASSWORD_CHARS - 1), "password for 'ann' is shorter than 8 characters"),
    ],
    ids=["empty-name", "space", "slash", "dash", "underscore", "dot", "role", "short-password"],
)
def test_add_refuses_a_bad_name_role_or_password(tmp_path, name, role, password, message):
    path = tmp_path / "users.json"
    with pytest.raises(InputError) as caught:
        add_user(path, name, role, password)
    assert str(caught.value).startswith(message)
    assert not path.exists()


def test_remove_and_deactivate(tmp_path):
    path = tmp_path / "users.json"
    for name in ("cy", "ann", "bob"):
        add_user(path, name, "user", "password-1")
    deactivate_user(path, "ann")
    ann = stored(path)["ann"]
    assert ann["active"] is False and ann["token_version"] == 1 and ann["role"] == "user"
    remove_user(path, "bob")
    assert sorted(stored(path)) == ["ann", "cy"]
    for change in (remove_user, deactivate_user):
        with pytest.raises(InputError) as caught:
            change(path, "bob")
        assert str(caught.value) == f"{path}: no user 'bob' (users: ann, cy)"
    remove_user(path, "ann")
    remove_user(path, "cy")
    for change in (remove_user, deactivate_user):
        with pytest.raises(InputError) as caught:
            change(path, "ann")
        assert str(caught.value) == f"{path}: no user 'ann' (users: none)"


def test_a_hand_written_entry_without_a_version_goes_to_version_1(tmp_path):
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {"ann": {"hash": "x", "id": "i"}, "bob": {"hash": "x"}}}))
    deactivate_user(path, "ann")
    add_user(path, "bob", "user", "password-1")
    assert stored(path)["ann"]["token_version"] == 1 and stored(path)["bob"]["token_version"] == 1


def test_list_is_sorted_with_defaults_for_a_hand_written_entry(tmp_path):
    path = tmp_path / "users.json"
    path.write_text(
        json.dumps(
            {"users": {"zed": {"hash": "x", "role": "admin", "token_version": 4, "id": "i"}, "amy": {"hash": "x"}}}
        )
    )
    assert list_users(path) == [User("amy", "user", True, 0, ""), User("zed", "admin", True, 4, "i")]
    assert list_users(tmp_path / "missing.json") == []
    path.write_text("{}")
    assert list_users(path) == []


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not a users file (JSONDecodeError; "),
        ("[1, 2]", "not a users file (AttributeError; "),
        ('{"users": [1]}', '"users" is not an object ('),
        ('{"users": {"bob": "x"}}', "user 'bob' has no password hash ("),
        ('{"users": {"bob": {"hash": 1}}}', "user 'bob' has no password hash ("),
        (
            '{"users": {"bob": {"hash": "x", "role": "root"}}}',
            "user 'bob' has role 'root', expected one of ['user', 'admin'] (",
        ),
        (
            '{"users": {"bob": {"hash": "x", "active": "yes"}}}',
            "user 'bob' has an \"active\" that is not true or false (",
        ),
        (
            '{"users": {"bob": {"hash": "x", "token_version": "1"}}}',
            "user 'bob' has a \"token_version\" that is not a whole number (",
        ),
        ('{"users": {"bob": {"hash": "x", "id": 7}}}', "user 'bob' has an \"id\" that is not a string ("),
    ],
    ids=["json", "not-object", "users-list", "entry-string", "hash-number", "role", "active", "version", "id"],
)
def test_an_invalid_file_is_refused_naming_the_problem(tmp_path, text, problem):
    path = tmp_path / "users.json"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        list_users(path)
    assert str(caught.value) == f"{path}: {problem}{SHAPE})"


def store_seeing_every_change(path: Path) -> UserStore:
    store = UserStore(path)
    store._watch = FileWatch(path, interval=0.0)  # look at every call, not once a second
    return store


def test_the_store_follows_the_file_and_keeps_the_last_good_list(tmp_path, caplog):
    path = tmp_path / "users.json"
    add_user(path, "ann", "user", "password-1")
    store = store_seeing_every_change(path)
    assert store.get("ann") == User("ann", "user", True, 0, stored(path)["ann"]["id"])
    assert store.get("bob") is None and store.file_error() is None
    add_user(path, "bob", "admin", "password-2")
    assert store.get("bob") is not None and store.get("bob").role == "admin"  # type: ignore[union-attr]
    good = path.read_text()
    with caplog.at_level(logging.ERROR, logger="serve.users"):
        path.write_text('{"users": {"ann": {"role": "user"}}}')
        assert store.file_error() == f"{path}: user 'ann' has no password hash ({SHAPE})"
    assert caplog.messages == [
        f"users file refused, keeping the last good list of 2 users: {path}: user 'ann' has no password hash ({SHAPE})"
    ]
    assert store.get("bob") is not None  # the last good list answers
    path.write_text(good)
    assert store.file_error() is None


def test_a_store_on_an_invalid_file_starts_empty_with_the_error(tmp_path):
    path = tmp_path / "users.json"
    path.write_text("[]")
    store = UserStore(path)
    assert store.get("ann") is None and store.error is not None and "not a users file" in store.error


def test_authenticate_needs_the_password_and_an_active_user(tmp_path, monkeypatch):
    path = tmp_path / "users.json"
    add_user(path, "ann", "user", "password-1")
    add_user(path, "cid", "user", "password-3", active=False)
    store = UserStore(path)
    ann = store.authenticate("ann", "password-1")
    assert ann is not None and (ann.name, ann.role, ann.active) == ("ann", "user", True)
    assert store.authenticate("ann", "password-2") is None
    assert store.authenticate("cid", "password-3") is None
    verified: list[str] = []
    real = users_module._HASHER.verify

    def verify(password: str, hashed: str) -> bool:
        verified.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(users_module._HASHER, "verify", verify)
    assert store.authenticate("nobody", "password-1") is None
    assert verified == [users_module._dummy_hash()]  # a hash is checked all the same: no timing tells
    assert store.authenticate("ann", "password-1") == ann and verified[-1] == stored(path)["ann"]["hash"]
