"""Module names: how files import each other, so that graph-populate can link an import to a file.

A file's ``module_name`` and every import it makes are written in the same scheme, and
graph-populate joins them by equality (in SQL, set-based):

* Python: dotted modules. ``pkg/sub/mod.py`` is ``pkg.sub.mod``, ``pkg/__init__.py`` is ``pkg``;
  ``from .x import y`` in ``pkg/sub/mod.py`` names ``pkg.sub.x`` and ``pkg.sub.x.y`` (``y`` may be a
  submodule: a candidate that matches no file links nothing).
* JavaScript / TypeScript: paths without extension, ``dir/index`` as ``dir``; relative specifiers
  (``./util``, ``../lib/x.js``) resolved against the importing file's directory. Bare specifiers
  (packages) stay as they are and link only if a file has that name.
* Go: a file's module is its directory (its package); imports are kept as written.
* Rust and others: no module name; imports are kept as written.
"""

from __future__ import annotations

import posixpath

from .tags import Import

_JS_LANGUAGES = frozenset({"javascript", "typescript", "tsx"})
_JS_EXTENSIONS = (".d.ts", ".tsx", ".ts", ".jsx", ".mjs", ".cjs", ".js")


def module_name(path: str, language: str | None) -> str | None:
    """The name other files import ``path`` (relative to the codebase root) by."""
    if language == "python":
        stem = path.removesuffix(".py")
        parts = [p for p in stem.split("/") if p]
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts) or None
    if language in _JS_LANGUAGES:
        return _js_module(path)
    if language == "go":
        return posixpath.dirname(path) or "."
    return None


def import_names(path: str, language: str | None, imports: tuple[Import, ...]) -> list[str]:
    """Every module name the file's imports may refer to, in the scheme of :func:`module_name`."""
    names: list[str] = []
    for item in imports:
        if language == "python":
            names.extend(_python_candidates(path, item))
        elif language in _JS_LANGUAGES:
            names.append(_js_import(path, item.module))
        else:
            names.append(item.module)
    return list(dict.fromkeys(name for name in names if name))


def _python_candidates(path: str, item: Import) -> list[str]:
    module = item.module
    if module.startswith("."):
        dots = len(module) - len(module.lstrip("."))
        package = path.split("/")[:-1]  # the importing file's package, as directories
        if dots - 1 > len(package):
            return []  # beyond the codebase's root
        base = package[: len(package) - (dots - 1)]
        module = ".".join([*base, *[p for p in module[dots:].split(".") if p]])
    candidates = [module] if module else []
    candidates += [f"{module}.{name}" if module else name for name in item.names if name != "*"]
    return candidates


def _js_module(path: str) -> str:
    for extension in _JS_EXTENSIONS:
        if path.endswith(extension):
            path = path[: -len(extension)]
            break
    if path == "index":
        return "."
    return path.removesuffix("/index")


def _js_import(path: str, specifier: str) -> str:
    if not specifier.startswith("."):
        return specifier
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), specifier))
    return _js_module(joined)
