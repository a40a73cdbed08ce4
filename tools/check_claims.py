"""Re-execute the book's chapters with other seeds and threads, and report every claim that fails.

``make claims`` (not part of ``make test``: 15-20 minutes on two otherwise idle cores; on a busy
machine two torch threads per kernel can slow a chapter tenfold, so run it alone) runs

    python tools/check_claims.py --offsets 1 2 --threads 2

Each chapter in ``_toc.yml`` is executed once per seed offset, with ``$LECTUREKIT_SEED_OFFSET``
set (``lecturekit.device.seed_everything`` adds it to every seed) and ``OMP_NUM_THREADS`` set to
``--threads``. Every cell runs even after a failure; a failing cell tagged ``claim`` is reported
with its assertion message, any other failing cell as an error. The exit status is 1 when
anything failed, so a claim that holds only for the seeds a chapter was written with shows up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
CLAIM_TAG = "claim"


@dataclass
class Failure:
    chapter: str
    offset: int
    cell: int
    is_claim: bool
    message: str


def chapters() -> list[Path]:
    """The notebooks of ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [chapter["file"] for part in toc.get("parts", []) for chapter in part.get("chapters", [])]
    return [ROOT / f"{entry}.ipynb" for entry in entries if (ROOT / f"{entry}.ipynb").exists()]


def run_chapter(path: Path, offset: int, threads: int, timeout: int) -> tuple[list[Failure], float]:
    """Execute one chapter with every cell run; return its failures and its wall time."""
    os.environ.update(
        LECTUREKIT_SEED_OFFSET=str(offset), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TQDM_DISABLE="1"
    )
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    failures = []
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as error:  # the chapter stops; the run goes on
        first_line = str(error).splitlines()[0]
        failures.append(Failure(path.stem, offset, -1, False, f"{type(error).__name__}: {first_line}"))
    seconds = time.perf_counter() - start
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                is_claim = CLAIM_TAG in cell.get("metadata", {}).get("tags", [])
                message = f"{output.get('ename')}: {output.get('evalue')}"
                failures.append(Failure(path.stem, offset, index, is_claim, message))
    return failures, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offsets", type=int, nargs="+", default=[1, 2], help="seed offsets (default: 1 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per chapter (default: 2)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("chapter", nargs="*", help="chapter names to run (default: all); e.g. 12-annealing")
    args = parser.parse_args(argv)
    selected = [p for p in chapters() if not args.chapter or p.stem in args.chapter]
    if not selected:
        parser.error(f"no chapter matches {args.chapter}")
    failures: list[Failure] = []
    for offset in args.offsets:
        for path in selected:
            found, seconds = run_chapter(path, offset, args.threads, args.timeout)
            failures += found
            verdict = "ok" if not found else f"{sum(f.is_claim for f in found)} claim(s) failed, "
            verdict += "" if not found else f"{sum(not f.is_claim for f in found)} other error(s)"
            print(f"offset {offset}  {path.stem:<36} {seconds:6.1f} s  {verdict}", flush=True)
    print()
    if not failures:
        print(f"Every claim held: {len(selected)} chapters x offsets {args.offsets}, {args.threads} threads.")
        return 0
    for f in failures:
        kind = "CLAIM FAILED" if f.is_claim else "ERROR"
        print(f"{kind}  {f.chapter} (offset {f.offset}, cell {f.cell}): {f.message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
