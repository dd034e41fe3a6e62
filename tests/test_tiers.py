"""The test tiers (pyproject.toml's markers): `make test-fast` leaves out every test that starts a server,
a container or a browser, and no such test can forget its mark."""

from __future__ import annotations

import re
import sys

from conftest import ROOT, run

TESTS = ROOT / "tests"
FAST = "not (server or container or browser or slow)"
# What starts a real server, container or browser in a test module (the helpers in tests/).
STARTS = re.compile(
    r"\b(start_server|start_nginx|TeamRemote|team_remote|S3Server|Browser)\b|\[RAKUTEN, \"serve\""
    r"|needs\(\"(nginx|prometheus|weed|wrk|podman|mmdebstrap|chromium)\"\)"
)
# conftest.py puts a test that asks for such a command with @pytest.mark.needs in its tier itself.
TIER_MARK = re.compile(
    r"pytest\.mark\.(server|container|browser)\b|pytest\.mark\.needs\(\"(nginx|prometheus|weed|wrk|podman|chromium)\""
)


def test_every_module_that_starts_a_server_container_or_browser_marks_its_tier():
    unmarked = [
        path.name
        for path in sorted(TESTS.glob("test_*.py"))
        if path.name != "test_tiers.py" and STARTS.search(path.read_text()) and not TIER_MARK.search(path.read_text())
    ]
    assert not unmarked, f"mark these with pytest.mark.server/container/browser (pyproject.toml): {unmarked}"


SLOW_TIERS = ["test_serve_roles.py", "test_remote.py", "test_containers.py", "test_docs.py"]
FAST_ONES = ["test_stages.py", "test_newton_svm.py", "test_tiers.py"]


def collected(marks: str) -> set[str]:
    """The modules among those named above that have a test selected by ``-m marks``."""
    modules = [f"tests/{name}" for name in [*SLOW_TIERS, *FAST_ONES, "test_drift.py"]]
    out = run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", marks, *modules], ROOT)
    return {line.split("::")[0].removeprefix("tests/") for line in out.stdout.splitlines() if "::" in line}


def test_the_fast_tier_leaves_out_servers_containers_and_browsers_and_keeps_the_rest():
    fast = collected(FAST)
    assert not fast & set(SLOW_TIERS)
    assert set(FAST_ONES) <= fast
    # A module that mixes both keeps its tests that start nothing.
    assert "test_drift.py" in fast and "test_drift.py" in collected("server")
