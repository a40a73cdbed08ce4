"""The book says what its cells compute.

Two rules, checked on every page of the book (chapters and Markdown pages):

1. **Numbers in prose are glued.** A result quoted in the text comes from the cell that
   computes it, through myst-nb's ``{glue:text}`key:format``` role. The rule, as code in
   :func:`typed_numbers`: outside math (``$...$``, ``$$...$$``, ``\\begin{..}``), code, roles
   (``{glue:...}``, ``{cite}``, ...), link targets and HTML comments, a number with a decimal
   point, a percentage or a number in scientific notation is a hand-typed result. Section
   numbers ("Section 3.1", "chapter 4.2") are not. A paragraph that must quote a number
   that is not a computed result (a published value, a setting) says why in a comment
   ``<!-- typed: reason -->`` inside that paragraph.
2. **Claims are assertions.** Every chapter notebook has cells tagged ``claim`` (and
   ``remove-cell``, so readers see the prose, not the asserts) that ``assert`` what the
   prose claims about the outputs; ``make book`` fails on a chapter that contradicts itself
   (``execute.raise_on_error``), and ``make claims`` re-runs the claims with other seeds
   and two threads. :func:`test_a_contradicted_claim_fails_the_build` builds a one-page
   book to prove the first half.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))

CLAIM_TAG = "claim"
EXEMPTION = re.compile(r"<!--\s*typed:\s*\S.*?-->", re.DOTALL)

# Pieces of Markdown that may hold numbers without being prose.
_NOT_PROSE = [
    re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE),  # fenced code and directives
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display math
    re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL),  # amsmath environments
    re.compile(r"(?<![\\$])\$(?!\$).+?(?<!\\)\$", re.DOTALL),  # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),  # roles: {glue:text}`x:.2f`, {cite}`key`, {ref}`label`
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<!--.*?-->", re.DOTALL),  # comments
    re.compile(r"<[^>]+>"),  # HTML tags and autolinks
    # the section number of a heading or of a list item: "# 3.1 Title", "- 4.1-4.2 [Title](...)"
    re.compile(r"^(\s*[-*]\s+|#{1,6}\s+)\d+(\.\d+)*([-–]\d+(\.\d+)*)?", re.MULTILINE),
    # Section numbers: "Section 3.1", "chapters 4.1-4.2", "Sections 3.1 and 3.2"
    re.compile(
        r"(?i)\b(sections?|chapters?|parts?|§)\s*\d+(\.\d+)*"
        r"(\s*(,|and|or|to|-|–)\s*\d+(\.\d+)*)*"
    ),
]
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+(?:[eE][-+−]?\d+)?|[eE][-+−]?\d+|\s?%)(?![\w.]\d)")


def _markdown_cells(path: Path) -> list[tuple[str, str]]:
    """(where, text) of each Markdown cell of a notebook, or the whole text of a page."""
    if path.suffix == ".md":
        return [(path.name, path.read_text())]
    cells = json.loads(path.read_text())["cells"]
    return [(f"{path.name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def typed_numbers(markdown: str) -> list[str]:
    """Hand-typed results in a Markdown text: the numbers the glue rule forbids.

    >>> typed_numbers("ESS is 0.31 here, {glue:text}`ess:.2f` there, $\\\\beta = 0.5$ fixed.")
    ['0.31']
    >>> typed_numbers("Section 3.1 shows it; 95 % of runs <!-- typed: a quoted figure -->.")
    []
    >>> typed_numbers("see chapter 4.2; it rose by 12 % and 3e-3 is small")
    ['12 %', '3e-3']
    """
    found = []
    for paragraph in re.split(r"\n\s*\n", markdown):
        if EXEMPTION.search(paragraph):
            continue
        found += _typed_numbers_in(paragraph)
    return found


def _typed_numbers_in(paragraph: str) -> list[str]:
    for pattern in _NOT_PROSE:
        paragraph = pattern.sub(" ", paragraph)
    return [match.group().strip() for match in _NUMBER.finditer(paragraph)]


@pytest.mark.parametrize("page", CHAPTERS + PAGES, ids=lambda p: p.name)
def test_prose_numbers_are_glued_from_outputs(page: Path) -> None:
    typed = [(where, number) for where, text in _markdown_cells(page) for number in typed_numbers(text)]
    assert not typed, (
        f"{page.name}: numbers typed by hand in the prose (glue them from the cell that computes them "
        "with {glue:text}`key:format`, or put <!-- typed: reason --> in the paragraph if they are not "
        "results):\n" + "\n".join(f"  {where}: {number}" for where, number in typed)
    )


def _claim_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and CLAIM_TAG in c.get("metadata", {}).get("tags", [])]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_every_chapter_asserts_its_claims(chapter: Path) -> None:
    claims = _claim_cells(chapter)
    assert claims, f"{chapter.name}: no cell tagged {CLAIM_TAG!r}; assert what the prose claims about the outputs"
    for cell in claims:
        source = "".join(cell["source"])
        tags = cell["metadata"]["tags"]
        assert "remove-cell" in tags, f"{chapter.name}: claim cell without the 'remove-cell' tag:\n{source}"
        assert re.search(r"^\s*assert\b.+,", source, re.MULTILINE), (
            f"{chapter.name}: a claim cell must assert with a message (assert condition, f'...'):\n{source}"
        )


def _notebook(cells: list[tuple[str, str, list[str]]]) -> dict:
    def cell(kind: str, source: str, tags: list[str]) -> dict:
        base = {"cell_type": kind, "metadata": {"tags": tags}, "source": source}
        return base | ({"outputs": [], "execution_count": None} if kind == "code" else {})

    return {
        "cells": [cell(*c) for c in cells],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _one_page_book(folder: Path, claim: str) -> Path:
    """A book with the course's own configuration and one page that glues a number and claims."""
    book = folder / "book"
    book.mkdir(parents=True)
    shutil.copy(ROOT / "_config.yml", book / "_config.yml")
    (book / "book").mkdir()
    shutil.copy(ROOT / "book" / "references.bib", book / "book" / "references.bib")
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext")
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    cells = [
        ("markdown", "# A page\n\nThe mean is {glue:text}`mean:.3f`.", []),
        ("code", "from myst_nb import glue\nmean = sum(range(5)) / 5\nglue('mean', mean, display=False)", []),
        ("code", claim, [CLAIM_TAG, "remove-cell"]),
    ]
    (book / "page.ipynb").write_text(json.dumps(_notebook(cells)))
    return book


def _build(book: Path) -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run(
        [str(jupyter_book), "build", str(book), "--all", "-W", "--keep-going"],
        capture_output=True, text=True, timeout=300, cwd=book,
    )


@pytest.mark.notebook
def test_a_contradicted_claim_fails_the_build(tmp_path: Path) -> None:
    """Two one-page builds with the course's _config.yml (about 20 s each: a Sphinx build is the
    only honest proof): the true claim publishes the glued number, the false one fails the build."""
    good = _one_page_book(tmp_path / "good", "assert mean == 2.0, f'mean is {mean}'")
    result = _build(good)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = (good / "_build" / "html" / "page.html").read_text()
    assert re.search(r"The mean is <span[^>]*>2\.000</span>\.", html), "the glued number did not reach the page"

    bad = _one_page_book(tmp_path / "bad", "assert mean > 3, f'the mean is {mean}, not above 3'")
    result = _build(bad)
    assert result.returncode != 0, "a chapter whose claim fails was published"
    assert "the mean is 2.0, not above 3" in result.stdout + result.stderr
