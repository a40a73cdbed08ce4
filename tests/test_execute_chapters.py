"""tools/execute_chapters.py, which `make book` runs before jupyter-book: every chapter executes,
one per core, into myst-nb's cache; a failing chapter (a contradicted claim) fails the run.

Checked on two one-cell notebooks (a few seconds: two kernel starts), not on the book itself.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def execute_chapters(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))  # importable by name: the pool pickles its worker
    module = importlib.import_module("execute_chapters")
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    return module


def _notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_a_failing_chapter_fails_the_run_and_the_others_are_cached(execute_chapters, monkeypatch, tmp_path, capsys):
    good = _notebook(tmp_path / "good.ipynb", "print(6 * 7)")
    bad = _notebook(tmp_path / "bad.ipynb", "assert 1 == 2, 'the prose says otherwise'")
    monkeypatch.setattr(execute_chapters, "chapters", lambda: [good, bad])

    assert execute_chapters.main(["--jobs", "2"]) == 1
    assert "the prose says otherwise" in capsys.readouterr().err

    cache = get_cache(str(tmp_path / "cache"))
    record = cache.match_cache_notebook(nbformat.read(good, as_version=4))  # what myst-nb looks up
    _, executed = cache.merge_match_into_notebook(nbformat.read(good, as_version=4))
    assert record is not None and executed.cells[0].outputs[0]["text"] == "42\n"
    with pytest.raises(KeyError):
        cache.match_cache_notebook(nbformat.read(bad, as_version=4))


def test_every_run_starts_from_an_empty_cache(execute_chapters, monkeypatch, tmp_path):
    counter = tmp_path / "runs.txt"
    chapter = _notebook(tmp_path / "chapter.ipynb", f"open({str(counter)!r}, 'a').write('run\\n')")
    monkeypatch.setattr(execute_chapters, "chapters", lambda: [chapter])
    assert execute_chapters.main(["--jobs", "1"]) == 0
    assert execute_chapters.main(["--jobs", "1"]) == 0
    assert counter.read_text() == "run\nrun\n"  # executed twice: nothing stale is reused


def test_jobs_must_be_positive(execute_chapters):
    with pytest.raises(SystemExit):
        execute_chapters.main(["--jobs", "0"])
