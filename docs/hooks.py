"""MkDocs hooks: the pages that come from the code and the pipeline, generated at build time.

- ``<!-- rakuten-cli -->`` in a page becomes the ``--help`` of ``rakuten`` and each subcommand,
  straight from the argparse parser.
- ``<!-- rakuten-openapi -->`` becomes the API reference, rendered from the OpenAPI document of
  the FastAPI app, which is also published as ``reference/openapi.json``.

- ``exploration.md`` is notebooks/01_exploration.ipynb executed, with its outputs and figures
  (docs/notebook_page.py).

- A page in ``docs/`` that ``mkdocs.yml`` does not list yet is put under "More" in the navigation,
  so a new page is never hidden (and never breaks the strict build) before it gets its place.

Nothing is written into the source tree, so ``git status`` stays clean after ``make docs-build``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
CLI_MARKER = "<!-- rakuten-cli -->"
OPENAPI_MARKER = "<!-- rakuten-openapi -->"
HELP_COLUMNS = "80"  # fixed (and as wide as a code block), so the page does not depend on the terminal


def _nav_pages(nav: Any) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_nav_pages(v) for v in nav.values()))
    if isinstance(nav, list):
        return set().union(set(), *(_nav_pages(v) for v in nav))
    return set()


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    docs = Path(config["docs_dir"])
    pages = sorted(p.relative_to(docs).as_posix() for p in docs.rglob("*.md"))
    unlisted = [page for page in pages if page not in _nav_pages(config["nav"])]
    if config["nav"] and unlisted:
        config["nav"].append({"More": unlisted})
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(openapi(), indent=2) + "\n"))
    page, images = exploration_page()
    files.append(File.generated(config, EXPLORATION_PAGE, content=page))
    for name, data in images.items():
        files.append(File.generated(config, name, content=data))
    return files


# --- the exploration notebook ---------------------------------------------------------------------

EXPLORATION_PAGE = "exploration.md"
NOTEBOOK = ROOT / "notebooks" / "01_exploration.ipynb"
_EXPLORATION: dict[float, tuple[str, dict[str, bytes]]] = {}


def exploration_page() -> tuple[str, dict[str, bytes]]:
    """The notebook run once per change (``make docs`` rebuilds on every edit of a page)."""
    changed = NOTEBOOK.stat().st_mtime
    if changed not in _EXPLORATION:
        spec = importlib.util.spec_from_file_location("notebook_page", ROOT / "docs" / "notebook_page.py")
        assert spec is not None and spec.loader is not None  # a .py file always has a loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _EXPLORATION.clear()
        _EXPLORATION[changed] = module.render(NOTEBOOK, "img/exploration/cell")
    return _EXPLORATION[changed]


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    if OPENAPI_MARKER in markdown:
        markdown = markdown.replace(OPENAPI_MARKER, openapi_reference(openapi()))
    return markdown


# --- the CLI ------------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command line, parser) for ``parser`` and every subcommand below it, in definition order."""
    yield prefix, parser
    for action in parser._actions:  # argparse has no public way to list subparsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, f"{prefix} {name}")


def cli_reference() -> str:
    from mlops_rakuten.cli import build_parser

    sections = []
    with _environment(COLUMNS=HELP_COLUMNS, NO_COLOR="1"):
        for command, parser in _subcommands(build_parser(), "rakuten"):
            level = "##" if command.count(" ") <= 1 else "###"
            sections.append(
                f"{level} `{command}`\n\n```text\n$ {command} --help\n{parser.format_help().rstrip()}\n```\n"
            )
    return "\n".join(sections)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- the API ------------------------------------------------------------------------------------

_OPENAPI: dict | None = None


def openapi() -> dict:
    """The served app's OpenAPI document, from an app built on an empty scratch project."""
    global _OPENAPI
    if _OPENAPI is None:
        from mlops_rakuten.serve.app import create_app
        from mlops_rakuten.serve.settings import Settings

        # The scratch project has no model on purpose: only the routes matter here.
        logging.getLogger("serve.model").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory() as scratch:
            base = Path(scratch)
            settings = Settings(
                jwt_secret="documentation-only-" + "0" * 32,
                project_dir=base,
                users_file=base / "users.json",
                state_dir=base / "state",
            )
            _OPENAPI = create_app(settings).openapi()
    return _OPENAPI


def _type(schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    for combined in ("anyOf", "oneOf"):
        if combined in schema:
            return " or ".join(_type(s) for s in schema[combined])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    return schema.get("type", "any")


_LIMITS = {
    "minimum": "≥ {}",
    "exclusiveMinimum": "> {}",
    "maximum": "≤ {}",
    "exclusiveMaximum": "< {}",
    "minLength": "at least {} chars",
    "maxLength": "at most {} chars",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
}


def _limits(schema: dict) -> str:
    found = [text.format(schema[key]) for key, text in _LIMITS.items() if key in schema]
    for option in schema.get("anyOf", []):
        found += [text.format(option[key]) for key, text in _LIMITS.items() if key in option]
    if "default" in schema:
        found.append(f"default `{json.dumps(schema['default'], ensure_ascii=False)}`")
    return ", ".join(found)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _operation(method: str, path: str, op: dict) -> str:
    lines = [f"### `{method.upper()} {path}`", ""]
    lines += [op.get("summary", ""), ""]
    if op.get("description"):
        lines += [op["description"], ""]
    auth = "bearer token (`Authorization: Bearer ...` from `/token`)" if op.get("security") else "none"
    lines.append(f"- **Authentication:** {auth}")
    for param in op.get("parameters", []):
        lines.append(
            f"- **Parameter** `{param['name']}` ({param['in']}, {_type(param.get('schema', {}))}"
            f"{', required' if param.get('required') else ''})"
        )
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        lines.append(f"- **Body** (`{media}`): {_type(body.get('schema', {}))}")
    for status, response in op.get("responses", {}).items():
        schemas = [_type(c["schema"]) for c in response.get("content", {}).values() if "schema" in c]
        lines.append(
            f"- **{status}** {_cell(response.get('description', ''))}" + (f": {', '.join(schemas)}" if schemas else "")
        )
    return "\n".join(lines) + "\n"


def _schema(name: str, schema: dict) -> str:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [_cell(schema["description"]), ""]
    properties = schema.get("properties", {})
    if properties:
        required = set(schema.get("required", []))
        lines += ["| field | type | required | limits | description |", "|---|---|---|---|---|"]
        for field, prop in properties.items():
            lines.append(
                f"| `{field}` | {_type(prop)} | {'yes' if field in required else 'no'} | "
                f"{_cell(_limits(prop))} | {_cell(prop.get('description', ''))} |"
            )
    else:
        lines.append(f"Type: {_type(schema)}")
    return "\n".join(lines) + "\n"


def openapi_reference(document: dict) -> str:
    info = document["info"]
    parts = [
        f"**{info['title']}**, API version {info['version']} (OpenAPI {document['openapi']}). "
        f"{info.get('description', '')} The raw document: [openapi.json](openapi.json).",
        "",
        "## Routes",
        "",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            parts.append(_operation(method, path, op))
    parts += ["## Schemas", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        parts.append(_schema(name, schema))
    return "\n".join(parts)
