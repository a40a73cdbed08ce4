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
# A student who deletes a test cell gets it back at grading time.
c.OverwriteCells.add_missing_cells = True
