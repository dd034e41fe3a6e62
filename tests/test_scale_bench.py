"""make bench-scale's outputs: the Markdown table and the log-log chart drawn from a results file."""

from __future__ import annotations

import json
from pathlib import Path

from mlops_rakuten.devtools import scale_bench


def results(path: Path) -> Path:
    stage = {"wall_s": 2.0, "cpu_s": 1.5, "peak_gb": 0.25}
    runs = [
        {
            "rows": rows,
            "load": "1.0",
            "features": rows // 4,
            "nonzeros": rows * 80,
            "stages": {"featurize": stage, "train": {**stage, "wall_s": rows / 1e4}},
        }
        for rows in (200_000, 100_000)
    ]
    data = {
        "date": "2026-12-07 17:00 UTC",
        "command": "cmd",
        "cores": 2,
        "load": "1.0",
        "solver": "newton",
        "runs": runs,
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_the_table_lists_every_stage_by_size_with_totals(tmp_path: Path, capsys):
    scale_bench.main(["--table", str(results(tmp_path / "scale.json"))])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "2026-12-07 17:00 UTC, 2 cores (load 1.0), solver `newton`; `cmd`"
    rows = [line for line in lines if line.startswith("| 1") or line.startswith("| 2")]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 100,000", "featurize"],
        ["| 100,000", "train"],
        ["| 100,000", "**all** (25,000 features, 8.0 M non-zeros)"],
        ["| 200,000", "featurize"],
        ["| 200,000", "train"],
        ["| 200,000", "**all** (50,000 features, 16.0 M non-zeros)"],
    ]
    # Totals add the stages' wall and CPU, keep the largest peak; µs per product from each.
    assert rows[2].endswith("| **12.0** | **3.0** | **0.25** | **120** | **30** |")
    assert rows[5].endswith("| **22.0** | **3.0** | **0.25** | **110** | **15** |")


def test_the_chart_is_a_png_drawn_from_the_file(tmp_path: Path):
    chart = tmp_path / "img" / "scale.png"
    chart.parent.mkdir()
    scale_bench.main(["--plot", str(results(tmp_path / "scale.json")), "--chart", str(chart)])
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
