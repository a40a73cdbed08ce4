"""Progress bars for the library's loops (``tqdm.auto``: a widget in Jupyter, text elsewhere).

A loop shows a bar only when its caller asks (``progress=True``) *and* the environment
variable ``TQDM_DISABLE`` is not set: the book build and the tests set it, so the same
notebook shows bars in JupyterLab and stays quiet in the rendered book.
"""

from __future__ import annotations

import os

from tqdm.auto import tqdm

__all__ = ["progress_bar", "progress_disabled_by_environment"]


def progress_disabled_by_environment() -> bool:
    """True when ``$TQDM_DISABLE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in {"1", "true", "yes"}


def progress_bar(n_steps: int, enabled: bool, desc: str | None = None) -> tqdm:
    """A ``tqdm`` over ``range(n_steps)``, shown only if ``enabled`` and not disabled by the environment.

    >>> sum(progress_bar(3, enabled=False))
    3
    """
    return tqdm(range(n_steps), disable=not enabled or progress_disabled_by_environment(), desc=desc)
