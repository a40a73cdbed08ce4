"""nbgrader settings for this course (run nbgrader from the repository root).

The instructor versions (nbgrader "source") live in ``solutions/`` and the student
versions (nbgrader "release") in ``exercises/``; both are committed and kept in sync
by ``make exercises`` and checked by ``tests/test_exercises.py``.
"""

c = get_config()  # noqa: F821  (injected by traitlets)

c.CourseDirectory.course_id = "sampling-generative"
c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# Cells that train a small model may take longer than nbgrader's 30 s default.
c.ExecutePreprocessor.timeout = 120
c.SandboxedExecute.timeout = 120
# A student who deletes a test cell gets it back at grading time.
c.OverwriteCells.add_missing_cells = True

# ---- Hardened grading (gradekit, issue 6; `make grade` runs all of it) --------------------------
# The battery's declaration next to each source notebook is not released to students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "battery.toml"]
# Autograde (issue 18): each notebook executes in a bubblewrap sandbox (gradekit.sandbox: no
# network, a clean environment, read-only venv, a private scratch folder, limits), where
# gradekit.execute.ResilientExecute loads gradekit.checks before the first cell and disables a cell
# that ignores the interrupt or kills the kernel; nbgrader then scores the outputs that came back,
# in this process. Outputs capped in bytes, not only lines.
c.Autograde.autograde_preprocessors = [
    "gradekit.sandbox.SandboxedExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "gradekit.execute.LimitOutputBytes",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.LimitOutputBytes.max_bytes = 100_000
# Feedback: no hidden test, in the source, quoted by a traceback or by any output (a student's
# code can see the hidden tests from inside its kernel and print them).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "gradekit.feedback.ScrubHiddenTests",
    "nbgrader.preprocessors.ClearHiddenTests",
    "gradekit.execute.LimitOutputBytes",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
c.ClearHiddenTests.enforce_metadata = False  # a student's cell quoting the marker must not stop feedback
