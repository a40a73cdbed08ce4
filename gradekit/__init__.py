"""Grading tools for the course's nbgrader exercises (not part of the physics library ``lecturekit``).

- ``gradekit.checks``: what test cells call inside the student's kernel (``intact``, ``assert_close``).
- ``python -m gradekit grade ...`` (``make grade``): the instructor's one grading command around nbgrader.
"""
