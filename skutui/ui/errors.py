"""One readable line for any failure, so the operator never sees a traceback.

A SkutuiError already names what failed, the value and the fix. Anything else is a bug:
the operator gets one line and where to find the details, the log gets the traceback.
"""

from __future__ import annotations

import logging

from skutui.domain.errors import SkutuiError

LOG_FILE = "the log (skutui logs)"
"""Where the details are: the journal under systemd, else /var/log/skutui (skutui.system.logs)."""

log = logging.getLogger("skutui.ui")


def describe(error: BaseException | None) -> str:
    """``None``: a failure that carried no exception (a worker's ``error`` is typed so, though
    Textual always sets it when the worker fails)."""
    if error is None:
        return "The operation failed without saying why."
    if isinstance(error, SkutuiError):
        text = str(error).strip() or "The operation failed without saying why"
        return text if text.endswith((".", "!", "?")) else f"{text}."
    log.error("unexpected error in the console", exc_info=error)
    detail = str(error).strip()
    name = type(error).__name__
    what = f"{name}: {detail}" if detail else name
    return f"Unexpected error ({what}). The details are in {LOG_FILE}."
