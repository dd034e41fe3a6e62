"""A team's shared remotes for tests: one bare git repository and one S3 bucket (SeaweedFS on loopback).

``TeamRemote.create`` pushes a reproduced demo project to both, as a project's first
commit on GitHub + DagsHub would be; ``clone`` is a teammate's (or a CI runner's)
fresh ``git clone`` with their own token in ``.dvc/config.local``.
"""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mlops_rakuten.ops.commands import run
from mlops_rakuten.ops.remote import configure_remote

from s3_server import SeaweedS3


@dataclass
class TeamRemote:
    git_url: Path
    s3: SeaweedS3
    token: str

    @classmethod
    def create(cls, project: Path, root: Path) -> "TeamRemote":
        """Make ``project`` (committed, pipeline reproduced) the first push to a new bare repo and bucket."""
        token = f"team-{secrets.token_hex(8)}"
        s3 = SeaweedS3(root / "s3", token)
        s3.start()
        try:
            git_url = root / "origin.git"
            run(["git", "init", "-q", "--bare", "-b", "main", str(git_url)], root)
            configure_remote(project, s3.endpoint, token)
            run(["git", "add", ".dvc/config"], project)
            run(["git", "commit", "-q", "-m", "DVC remote"], project)
            run(["dvc", "push", "-q"], project)
            run(["git", "remote", "add", "origin", str(git_url)], project)
            run(["git", "push", "-q", "origin", "main"], project)
        except BaseException:
            s3.stop()
            raise
        return cls(git_url, s3, token)

    def clone(self, dest: Path) -> Path:
        """A fresh clone with the remote's credentials in its git-ignored config.local; no DVC data yet."""
        run(["git", "clone", "-q", str(self.git_url), str(dest)], dest.parent)
        run(["git", "config", "user.email", "teammate@example.com"], dest)
        run(["git", "config", "user.name", "teammate"], dest)
        configure_remote(dest, self.s3.endpoint, self.token)
        return dest

    def object_sizes(self) -> dict[str, int]:
        """Every object on the DVC remote and its size in bytes."""
        pages = self.s3.client().get_paginator("list_objects_v2").paginate(Bucket=self.s3.bucket)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

    def refs(self) -> dict[str, str]:
        """The bare repository's refs -> commit."""
        out = run(["git", "for-each-ref", "--format=%(refname) %(objectname)"], self.git_url).stdout
        return dict(line.split() for line in out.splitlines())

    def stop(self) -> None:
        self.s3.stop()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_file(project: Path, md5: str) -> Path:
    """Where DVC 3 keeps the bytes whose md5 is ``md5`` in ``project``'s cache."""
    return project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def git_objects(project: Path, ref: str, not_on: str) -> tuple[int, int]:
    """(count, total bytes) of the git objects reachable from ``ref`` and not from ``not_on``."""
    listed = run(["git", "rev-list", "--objects", ref, "--not", not_on], project).stdout.split("\n")
    ids = "\n".join(line.split(" ")[0] for line in listed if line)
    sizes = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectsize)"],
        cwd=project,
        input=ids + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return len(sizes), sum(int(size) for size in sizes)
