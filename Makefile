# The two commands a newcomer needs: `make book` and `make test`.
# `make book` always re-executes every chapter (tools/execute_chapters.py, into an emptied cache), so a change in lecturekit shows up.
# Both create .venv on first use and reuse it afterwards (the stamp file records
# which pyproject/constraints it was built from).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lecturekit-installed
PIP_VERSION := 26.3

# Keep the book and the tests quiet and reproducible on a laptop. (No MPLBACKEND here:
# it would override the kernels' inline backend and drop the book's figures.)
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Progress bars stay on in JupyterLab (make lab) but off in the book and the tests,
# where they would only add stderr output.
QUIET := TQDM_DISABLE=1
# pytest runs two workers on two cores: one thread each avoids oversubscription,
# which slows torch's small operations by orders of magnitude.
PYTEST := $(QUIET) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest

.PHONY: setup book test browser-test unit lab bench exercises clean help claims

help:
	@echo "make book   build the HTML book into _build/html (executes every chapter)"
	@echo "make test   run every test, build the book, then check it and every exercise in Chromium"
	@echo "make lab    open JupyterLab on exercises/ (students' tools; INSTRUCTOR=1 for nbgrader's)"
	@echo "make browser-test  the built book and every exercise in headless Chromium (part of make test)"
	@echo "make bench  run the speed benchmarks (not part of make test)"
	@echo "make claims re-execute the chapters with two other seed offsets and 2 threads; report failed claims"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[course,tests]"
	touch $(STAMP)

# One torch thread per chapter kernel: the chapters run small batches, for which a second
# thread gains little on two cores and, on a busy machine, costs up to 25x (measured on
# chapters 03, 05-07 and 13, which then hit the 300 s cell timeout).
# The chapters execute first, one per core (tools/execute_chapters.py fills myst-nb's cache
# afresh and stops on any failing chapter); jupyter-book then takes their outputs from the cache.
book: setup
	$(QUIET) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python tools/execute_chapters.py
	$(QUIET) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/jupyter-book build . --all -W --keep-going
	@echo
	@echo "Book built: open file://$(CURDIR)/_build/html/index.html"

unit: setup
	$(PYTEST) -n 2 --doctest-modules --ignore=tests/browser lecturekit tests

# Each chapter executes once per run: in `make book`, which fails on any cell error
# (raise_on_error) or warning (-W). pytest executes the solution notebooks with nbval.
# The browser tests (tests/browser) look at the built book, so they run after it.
test: setup
	$(PYTEST) -n 2 --dist loadscope --nbval-lax --nbval-current-env --doctest-modules --ignore=tests/browser lecturekit tests solutions
	$(MAKE) book
	$(MAKE) browser-test

# The book and every exercise in headless Chromium (needs `make book` first, and Debian's
# chromium: `sudo apt-get install chromium`; skipped, saying so, without it).
# Screenshots go to _build/screenshots/. (--confcutdir: no torch import from tests/conftest.py.)
browser-test: setup
	$(PYTEST) -n 2 --dist loadfile --confcutdir=tests/browser tests/browser

# Every chapter's claim cells (tagged `claim`) under other seeds and two threads, to catch a
# claim that holds only for the seeds it was written with (tools/check_claims.py; ~10 min).
claims: setup
	$(QUIET) $(BIN)/python tools/check_claims.py --offsets 1 2 --threads 2

# A student's JupyterLab: JUPYTER_CONFIG_DIR=jupyter-student switches nbgrader's instructor
# tools off (the Create Assignment panel, the Formgrader, the Nbgrader menu, the course and
# assignment lists, and their server extensions); the Validate button stays. Instructors get
# every tool with `make lab INSTRUCTOR=1` (the venv's configuration, nothing switched off).
lab: setup
	$(if $(INSTRUCTOR),,JUPYTER_CONFIG_DIR="$(CURDIR)/jupyter-student") $(BIN)/jupyter lab exercises

bench: setup
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e ".[course,bench]"
	$(BIN)/python benchmarks/bench_mala.py
	$(BIN)/python benchmarks/bench_flows.py
	$(BIN)/python benchmarks/bench_phi4.py
	$(BIN)/python benchmarks/bench_broken_phase.py
	$(BIN)/python benchmarks/bench_adaptive_rv.py
	$(BIN)/python benchmarks/bench_annealing.py
	$(BIN)/python benchmarks/bench_informed_base.py
	$(BIN)/python benchmarks/bench_neutra_global_local.py
	$(BIN)/python benchmarks/bench_conditional.py

exercises: setup
	# nbgrader calls `alembic` by name when it creates the gradebook, so .venv/bin goes on PATH.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/nbgrader generate_assignment '*' --force

clean:
	rm -rf _build .pytest_cache submitted autograded feedback gradebook.db reports

# Grade one assignment with gradekit (README, "For instructors"): each notebook runs in a
# bubblewrap sandbox, JOBS students at a time (default: every core).
#   make grade ASSIGNMENT=01-sampling-basics SUBMISSIONS=<folder or LMS zip> [ROSTER=students.csv] [TIMEOUT=seconds] [JOBS=N]
.PHONY: grade
grade: setup
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || { echo "usage: make grade ASSIGNMENT=01-sampling-basics SUBMISSIONS=<folder or zip> [ROSTER=students.csv] [TIMEOUT=seconds] [JOBS=N]"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" MPLBACKEND=Agg $(QUIET) $(BIN)/python -m gradekit grade "$(ASSIGNMENT)" "$(SUBMISSIONS)" \
		$(if $(ROSTER),--roster "$(ROSTER)") $(if $(TIMEOUT),--timeout $(TIMEOUT)) $(if $(JOBS),--jobs $(JOBS))
