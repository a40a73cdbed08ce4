"""``python -m gradekit grade ASSIGNMENT SUBMISSIONS``: see :mod:`gradekit.grade`."""

import sys

from gradekit.grade import main

sys.exit(main())
