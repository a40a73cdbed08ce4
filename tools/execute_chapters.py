"""Execute the book's chapters into myst-nb's execution cache, one chapter per core at a time.

``make book`` runs this first, then ``jupyter-book build`` with ``execute_notebooks: cache``,
which takes every chapter's outputs from the cache (``_build/.jupyter_cache``, the path myst-nb
uses by default). Each chapter runs in one kernel with one torch thread (set by ``make book``),
so on two cores two chapters at a time halve the book's execution time; sphinx alone would run
them one after another.

The cache is cleared first, so every build executes every chapter afresh (a change in
``lecturekit`` shows up). A chapter that fails (an error in any cell, a claim contradicted, a cell
past the timeout) is reported with its traceback and the exit status is 1, so ``make book``
stops; a chapter missing from the cache would otherwise be executed again by myst-nb, which
fails the build the same way (``raise_on_error``).

Run: ``python tools/execute_chapters.py [--jobs N] [--timeout S]`` from anywhere.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import yaml
from jupyter_cache import get_cache
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"


def chapters() -> list[Path]:
    """The notebooks of ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [chapter["file"] for part in toc.get("parts", []) for chapter in part.get("chapters", [])]
    return [ROOT / f"{entry}.ipynb" for entry in entries if (ROOT / f"{entry}.ipynb").exists()]


def timeout_from_config() -> int:
    """``execute.timeout`` of ``_config.yml``, the seconds a cell may take."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    return int(config.get("execute", {}).get("timeout", 300))


def _execute(data: ProcessData) -> tuple[int, str, float]:
    started = time.perf_counter()
    status, uri = ExecutionWorkerLocalMProc()(data)  # executes in the chapter's folder, caches on success
    return status, uri, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="chapters at a time (default: cores)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: _config.yml's)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive number, got {args.jobs}")
    timeout = args.timeout or timeout_from_config()

    shutil.rmtree(CACHE, ignore_errors=True)
    cache = get_cache(str(CACHE))
    records = [cache.add_nb_to_project(str(path)) for path in chapters()]
    work = [ProcessData(record.pk, record.uri, cache, timeout, False) for record in records]

    started = time.perf_counter()
    print(f"Executing {len(work)} chapters, {args.jobs} at a time (timeout {timeout} s per cell)", flush=True)
    failed = []
    # chunksize 1: a core that finishes a chapter takes the next one, whatever its length
    with multiprocessing.Pool(args.jobs) as pool:
        for status, uri, seconds in pool.imap_unordered(_execute, work, chunksize=1):
            name = Path(uri).stem
            print(f"  {name:<40} {seconds:6.1f} s  {'ok' if status == 0 else 'FAILED'}", flush=True)
            if status != 0:
                failed.append(uri)
    print(f"Executed in {time.perf_counter() - started:.0f} s", flush=True)
    for uri in failed:
        record = cache.get_project_record(uri)
        print(f"\n{Path(uri).name} failed:\n{record.traceback or '(no traceback: see the log above)'}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} chapter(s) failed: {', '.join(Path(u).stem for u in failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
