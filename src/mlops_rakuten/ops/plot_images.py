"""The pipeline's DVC plots as PNG files, drawn with no network: ``make plots`` (``rakuten plots``).

``dvc plots show`` and ``dvc plots diff`` write an HTML page that loads Vega from a CDN, so offline
its charts are missing. Here DVC still fills the templates (``--json``: each plot's Vega-Lite spec
with its data, one facet per revision), and vl-convert draws them with the Vega it bundles (the
text's pixels can differ a little between machines, with their fonts). Image plots (the PNGs the
pipeline writes) are copied, one file per revision.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from mlops_rakuten.core.atomic import atomic_path
from mlops_rakuten.core.errors import InputError
from mlops_rakuten.ops.commands import dvc

# Git-ignored, beside the HTML report `dvc plots show` writes into dvc_plots/.
PLOT_IMAGES = "dvc_plots/images"
SCALE = 2  # pixels per Vega-Lite unit: the 27 class names stay readable when zoomed


def _name(plot: str, revision: str | None = None) -> str:
    """``plots/predictions.csv`` -> ``predictions.png``; an image plot per revision -> ``NAME.REV.png``."""
    stem = Path(plot).stem + (f".{revision}" if revision else "")
    return re.sub(r"[^\w.~-]", "_", stem) + ".png"


def plot_images(
    revisions: list[str] | None = None, out: Path = Path(PLOT_IMAGES), cwd: Path | None = None, images: bool = True
) -> list[Path]:
    """Draw the plots of ``dvc plots diff REVISIONS`` (the workspace's, ``dvc plots show``, without
    revisions) into ``out``; returns the files written. Earlier PNGs in ``out`` are removed.
    ``images=False`` leaves out the image plots (only the charts DVC draws from data)."""
    try:
        import vl_convert
    except ImportError:
        raise InputError(
            "drawing plots needs vl-convert-python, in the plots extra: make setup installs it "
            "(or pip install -e '.[plots]')"
        ) from None

    folder = (cwd or Path.cwd()) / out
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch:
        command = ["plots", "diff", *revisions] if revisions else ["plots", "show"]
        report = json.loads(dvc(*command, "--json", "-o", scratch, cwd=cwd) or "{}")
        plots = report.get("data") or {}
        if not plots:
            raise InputError(f"`dvc {' '.join(command)}` found no plots: run `make run` first")
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.png"):
            stale.unlink()
        for plot, entries in plots.items():
            for entry in entries:
                if entry["type"] == "vega":
                    target = folder / _name(plot)
                    with atomic_path(target) as tmp:
                        tmp.write_bytes(vl_convert.vegalite_to_png(entry["content"], scale=SCALE))
                elif entry["type"] == "image" and images:
                    target = folder / _name(plot, entry["revisions"][0])
                    with atomic_path(target) as tmp:
                        shutil.copyfile(entry["url"], tmp)
                else:
                    continue
                written.append(target)
    return written
