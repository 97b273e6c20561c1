"""Text from the database made safe to print on a terminal (plain: no rich, so that `autopilot check`,
which prints plain lines, does not import it)."""

from __future__ import annotations

import re
from typing import Any

# Data from the database (job_runs.message is writable by the runner role, backup paths, setting
# values, error messages) must not drive the operator's terminal: every control character --
# C0 (ESC, BEL, backspace, carriage return...), DEL and C1 (CSI 0x9b, OSC 0x9d...) -- is dropped,
# tab and line breaks become a space. rich escapes markup, but passes ESC through.
_SPACES = str.maketrans(dict.fromkeys("\t\n\v\f\r", " "))
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def safe(value: Any) -> str:
    """``value`` as text that is safe to print on a terminal (see above); None is the empty string."""
    if value is None:
        return ""
    return _CONTROLS.sub("", str(value).translate(_SPACES))


def safe_data(value: Any) -> Any:
    """Every string in ``value`` (and in its dicts, lists, tuples) made :func:`safe`; the rest as is."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {k: safe_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(safe_data(v) for v in value)
    return value
