"""The exploration notebook as a docs page, with its outputs: executed at build time (nbclient),
never stored with outputs in git.

Markdown cells are kept as they are, code becomes ```python blocks, text output (streams, plain
results) ```text blocks, DataFrames their HTML table, and figures PNG files next to the page.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

STYLE = re.compile(r"<style scoped>.*?</style>\s*", re.DOTALL)  # pandas' inline CSS; the site styles tables
TIMEOUT_S = 600  # per cell; the whole notebook takes well under a minute on the demo data


def _text(output) -> str | None:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return output.get("data", {}).get("text/plain")


def render(notebook: Path, image_prefix: str) -> tuple[str, dict[str, bytes]]:
    """(Markdown page, {image name: PNG bytes}) of ``notebook`` run in its own folder.

    Images are named ``<image_prefix>-<cell>-<output>.png`` and linked by that name, so they go in
    the page's folder."""
    book = nbformat.read(notebook, as_version=4)
    NotebookClient(
        book, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
    ).execute()
    parts: list[str] = []
    images: dict[str, bytes] = {}
    for number, cell in enumerate(book.cells):
        if cell.cell_type == "markdown":
            parts.append(cell.source.strip())
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(f"```python\n{cell.source.rstrip()}\n```")
        for index, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if "image/png" in data:
                name = f"{image_prefix}-{number}-{index}.png"
                images[name] = base64.b64decode(data["image/png"])
                parts.append(f"![Figure of cell {number}]({name})")
            elif "text/html" in data and "<table" in data["text/html"]:
                # a DataFrame: its HTML table, inside a div so Markdown leaves it alone
                table = STYLE.sub("", data["text/html"]).strip()
                parts.append(f'<div class="notebook-table">\n{table}\n</div>')
            elif (text := _text(output)) and text.strip():
                parts.append(f"```text\n{text.rstrip()}\n```")
    return "\n\n".join(parts) + "\n", images
