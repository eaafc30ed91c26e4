"""What the docs tell users to copy: connection forms and snippets, from every place they are given.

The README, the Sphinx sources under ``docs/`` (``.. code-block::`` directives) and the example
DAG docstrings. The docs tests run each of them, with only the placeholders (hosts, paths,
credentials) swapped for a local server, so a form that Airflow or a provider cannot read, or a
snippet that does not run, fails here first.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = REPO / "docs"
EXAMPLE_DAGS = sorted((REPO / "example_dags").glob("*.py"))
_EXPORT = re.compile(r"export (AIRFLOW_CONN_\w+)='([^']*)'")
_DIRECTIVE = re.compile(r"^(?P<indent> *)\.\. code-block:: *(?P<language>\S+) *$")


class Block(NamedTuple):
    """A code block as a user reads it, and where: ``README.md:2`` is the README's second one."""

    where: str
    code: str


def doc_sources() -> list[Path]:
    """The Sphinx site's own sources (what ``python3 dev.py docs`` builds)."""
    return sorted(
        path for path in DOCS.rglob("*") if path.suffix in {".rst", ".md"} and "_build" not in path.parts
    )


def _rst_blocks(text: str, language: str) -> list[str]:
    """The contents of the ``.. code-block:: <language>`` directives, dedented."""
    blocks = []
    lines = text.splitlines()
    for at, line in enumerate(lines):
        match = _DIRECTIVE.match(line)
        if not match or match["language"] != language:
            continue
        indent = len(match["indent"])
        body: list[str] = []
        for following in lines[at + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break  # the first line back at the directive's indentation ends the block
            if body or (following.strip() and not following.strip().startswith(":")):
                body.append(following)  # (options such as :caption: and the blank line skipped)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
    return blocks


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def code_blocks(language: str) -> list[Block]:
    """Every ``language`` block of the README and of the docs' sources, in reading order."""
    blocks = [Block(f"README.md:{n}", code) for n, code in enumerate(readme_blocks(language), 1)]
    for source in doc_sources():
        if source.suffix == ".rst":
            name = source.relative_to(REPO).as_posix()
            blocks += [
                Block(f"{name}:{n}", code)
                for n, code in enumerate(_rst_blocks(source.read_text(), language), 1)
            ]
    return blocks


def connection_forms(conn_env: str) -> list[str]:
    """Every distinct ``export <conn_env>='...'`` value in the docs, in the order written."""
    texts = [block.code for block in code_blocks("bash")] + [path.read_text() for path in EXAMPLE_DAGS]
    forms = [value for text in texts for name, value in _EXPORT.findall(text) if name == conn_env]
    return list(dict.fromkeys(forms))  # a form given on two pages is tested once


def marked_region(path: Path, marker: str) -> str:
    """The lines between ``# [START marker]`` and ``# [END marker]``: what the docs include."""
    text = path.read_text()
    start, end = f"# [START {marker}]\n", f"# [END {marker}]"
    assert start in text and end in text, f"{path.name} has no [START/END {marker}] markers"
    region = text.split(start, 1)[1].split(end, 1)[0]
    return region[: region.rfind("\n") + 1]  # without the END marker's own indentation
