"""The one way the project runs ``dvc``, ``git`` and ``gto``: as a person would type them.

This Python's bin/ (the venv) comes first on PATH, so the commands are the ones installed with
the project whichever way it was started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from mlops_rakuten.core.errors import InputError


def run(
    cmd: list[str],
    cwd: Path | str | None,
    check: bool = True,
    *,
    capture: bool = True,
    timeout: float | None = None,
    text: bool = True,
    env: dict[str, str] | None = None,
    input: str | bytes | None = None,
    start_new_session: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` and wait for it; with ``check``, raise with its output if it fails.

    Output is captured (as text unless ``text=False``), or left on the terminal with
    ``capture=False``; ``input`` is written to its standard input. After ``timeout`` seconds the
    command's whole process group is killed (DVC's upload threads outlive a plain kill of the
    parent) and TimeoutExpired raised.
    """
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    pipe = subprocess.PIPE if capture else None
    stdin = subprocess.PIPE if input is not None else None
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=stdin,
        stdout=pipe,
        stderr=pipe,
        text=text,
        start_new_session=start_new_session or timeout is not None,
    ) as proc:
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def last_error(result: subprocess.CompletedProcess) -> str:
    """The line of a failed command's output that says why: its last ``ERROR:`` line, else its last line."""
    lines = [line.strip(" ❌") for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
    return (errors or lines or [f"exit code {result.returncode}"])[-1]


def output(cmd: list[str], cwd: Path | str | None, what: str | None = None) -> str:
    """The standard output of ``cmd``; InputError ``"<what>: <why>"`` if it fails."""
    result = run(cmd, cwd, check=False)
    if result.returncode != 0:
        raise InputError(f"{what or '`' + ' '.join(cmd) + '` failed'}: {last_error(result)}")
    return result.stdout


def dvc(*args: str, cwd: Path | None = None) -> str:
    return output(["dvc", *args], cwd)


def git(*args: str, cwd: Path | None = None) -> str:
    return output(["git", *args], cwd).strip()
