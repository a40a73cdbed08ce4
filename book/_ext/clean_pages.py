"""Sphinx extension: the book's pages load without JavaScript errors (tests/browser checks it).

With Jupyter Book 1's default stack (Sphinx 7.4, sphinx-thebe 0.3.1) Chromium's console shows
``Identifier 'THEBE_JS_URL' has already been declared`` on every page: sphinx-thebe registers
its inline configuration script after the HTML builder has started, and Sphinx then writes it
into every page twice. The book has no Thebe (live code) button (``launch_buttons.thebe`` is
off, and Thebe would need a network anyway), so this extension keeps Thebe's scripts out.
"""

from __future__ import annotations

from typing import Any

import sphinx_thebe
from sphinx.application import Sphinx


def setup(app: Sphinx) -> dict[str, Any]:
    for listener in list(app.events.listeners.get("env-before-read-docs", [])):
        if listener.handler is sphinx_thebe.init_thebe_core:
            app.disconnect(listener.id)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
