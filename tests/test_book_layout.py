"""The book's table of contents and its notebooks agree, and chapters are committed clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    return files


def _resolve(entry: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        path = ROOT / f"{entry}{suffix}"
        if path.exists():
            return path
    return None


BOOK_NOTEBOOKS = sorted(p for p in (ROOT / "book").glob("*.ipynb"))


@pytest.mark.parametrize("entry", _toc_files())
def test_every_toc_entry_exists(entry: str) -> None:
    assert _resolve(entry) is not None, f"_toc.yml lists {entry!r} but no {entry}.ipynb or {entry}.md exists"


def test_every_book_notebook_is_in_the_toc() -> None:
    listed = {_resolve(entry) for entry in _toc_files()}
    missing = [p.name for p in BOOK_NOTEBOOKS if p not in listed]
    assert not missing, f"book notebooks not in _toc.yml (they would not be built): {missing}"


@pytest.mark.parametrize("notebook", BOOK_NOTEBOOKS, ids=lambda p: p.name)
def test_book_notebooks_are_committed_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    with_outputs = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]
    assert not with_outputs, f"{notebook.name}: cells {with_outputs} carry outputs; clear them (the book executes at build time)"


@pytest.mark.parametrize("notebook", BOOK_NOTEBOOKS, ids=lambda p: p.name)
def test_book_notebooks_use_the_python3_kernel(notebook: Path) -> None:
    kernelspec = json.loads(notebook.read_text())["metadata"].get("kernelspec", {})
    assert kernelspec.get("name") == "python3", f"{notebook.name}: kernelspec {kernelspec!r}, expected name 'python3'"


MAX_CODE_LINE = 88  # characters of code that fit the book's text width without scrolling


@pytest.mark.parametrize("notebook", BOOK_NOTEBOOKS, ids=lambda p: p.name)
def test_book_code_lines_fit_the_page(notebook: Path) -> None:
    cells = json.loads(notebook.read_text())["cells"]
    too_long = [
        f"cell {i}, line {j + 1} ({len(line)} characters): {line[:60]}..."
        for i, cell in enumerate(cells)
        if cell["cell_type"] == "code"
        for j, line in enumerate("".join(cell["source"]).splitlines())
        if len(line) > MAX_CODE_LINE
    ]
    assert not too_long, f"{notebook.name}: code lines over {MAX_CODE_LINE} characters:\n" + "\n".join(too_long)


def _page_title(page: Path) -> str:
    if page.suffix == ".md":
        lines = page.read_text().splitlines()
    else:
        lines = "".join(json.loads(page.read_text())["cells"][0]["source"]).splitlines()
    return next((line for line in lines if line.startswith("# ")), "")


@pytest.mark.parametrize("entry", _toc_files())
def test_page_titles_carry_no_math(entry: str) -> None:
    """Titles appear in every page's sidebar, including pages where Sphinx loads no MathJax
    (search, index, bibliography), so TeX in a title shows raw there: use Unicode (φ⁴, ℤ₂)."""
    page = _resolve(entry)
    assert page is not None
    title = _page_title(page)
    assert "$" not in title and "\\(" not in title, f"{page.name}: title {title!r} has TeX; write it in Unicode"
