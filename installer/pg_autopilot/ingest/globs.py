"""Include / exclude globs of a codebase, matched against a file's path relative to the root.

Semantics (the gitignore dialect most users already know, minus negation):

* Paths use ``/``. ``*`` matches any run of characters within one path segment, ``?`` one
  character (not ``/``), ``[abc]`` / ``[!abc]`` a character class; dotfiles are not special.
* ``**`` as a whole segment matches zero or more segments: ``**/test_*.py``, ``src/**/*.ts``,
  ``vendor/**``. Elsewhere (``a**b``) it acts as ``*``.
* A pattern with no ``/`` matches any single segment at any depth: ``*.py`` matches
  ``a/b/c.py``, ``node_modules`` matches ``web/node_modules/x.js``.
* A pattern with a ``/`` (leading, as ``/docs`` or ``./docs``, or inside) is anchored at the
  root.
* A pattern that matches a directory matches everything below it: ``docs`` and ``build/out``
  exclude whole trees.

Python 3.13's ``PurePath.full_match`` would do the ``**`` part, but the package supports 3.11,
and ``fnmatch`` lets ``*`` cross ``/``; so patterns are compiled to regular expressions here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PathMatcher:
    """Compiled include and exclude patterns. No include pattern means every file is included."""

    include: tuple[re.Pattern[str], ...]
    exclude: tuple[re.Pattern[str], ...]

    @classmethod
    def from_globs(cls, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> PathMatcher:
        return cls(tuple(compile_glob(g) for g in include), tuple(compile_glob(g) for g in exclude))

    def selects(self, relative_path: str) -> bool:
        """Whether a file is listed: included (or no include patterns) and not excluded."""
        if self.include and not any(p.match(relative_path) for p in self.include):
            return False
        return not self.excludes(relative_path)

    def excludes(self, relative_path: str) -> bool:
        """Whether a file or a directory (then everything in it) is excluded."""
        return any(pattern.match(relative_path) for pattern in self.exclude)


def compile_glob(glob: str) -> re.Pattern[str]:
    """The regular expression of one pattern (see the module docstring)."""
    pattern = glob.strip()
    if not pattern or pattern in {"/", "./"}:
        raise ValueError(f"empty glob pattern {glob!r}")
    anchored = pattern.startswith(("/", "./"))
    pattern = pattern.removeprefix("./").lstrip("/").rstrip("/")
    segments = pattern.split("/")
    anchored = anchored or len(segments) > 1
    parts = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(".*" if last else "(?:[^/]+/)*")
        else:
            parts.append(_segment_regex(segment) + ("" if last else "/"))
    body = "".join(parts)
    prefix = "" if anchored else "(?:[^/]+/)*"
    # a match of a leading part of the path (a directory) covers everything below it
    return re.compile(f"{prefix}{body}(?:/.*)?\\Z", re.DOTALL)


def _segment_regex(segment: str) -> str:
    """One path segment: ``*`` and ``?`` stay within it, ``[...]`` is a class."""
    out = []
    index = 0
    while index < len(segment):
        char = segment[index]
        if char == "*":
            while index + 1 < len(segment) and segment[index + 1] == "*":
                index += 1
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := _class_end(segment, index)) != -1:
            out.append(_class_regex(segment[index + 1 : end]))
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)


def _class_end(segment: str, start: int) -> int:
    """The index of the ``]`` closing the class opened at ``start`` (-1: a literal ``[``)."""
    index = start + 1
    if index < len(segment) and segment[index] in "!^":
        index += 1
    if index < len(segment) and segment[index] == "]":
        index += 1
    return segment.find("]", index)


def _class_regex(inner: str) -> str:
    negate = inner[:1] in {"!", "^"}
    if negate:
        inner = inner[1:]
    escaped = inner.replace("\\", "\\\\").replace("[", "\\[")
    return f"[^/{escaped}]" if negate else f"[{escaped}]"
