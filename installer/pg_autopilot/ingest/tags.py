"""Definitions, references and imports of a parsed file: the raw material of the code graph.

As aider's repo map does, one tree-sitter query per language captures the definitions and the
names a file calls or extends; graph-populate later resolves references to definitions across
files, and imports to files or modules. The query runs once per file (one pass over the tree);
names and kinds of definitions come from :mod:`.definitions`, so they match the chunks' symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tree_sitter import Node, QueryCursor

from .definitions import effective_kind, node_text, qualify, resolve_definition
from .languages import Language


@dataclass(frozen=True, slots=True)
class Definition:
    """A definition: its own name, its qualified symbol (``Class.method``), kind and lines."""

    name: str
    symbol: str
    kind: str
    line: int
    end_line: int


@dataclass(frozen=True, slots=True)
class Reference:
    """A name the file uses: ``call`` (a call target, plain or attribute) or ``class`` (a base
    class, an implemented trait, a constructed type)."""

    name: str
    kind: str
    line: int


@dataclass(frozen=True, slots=True)
class Import:
    """An imported module (``a.b``, ``./util``, ``net/http``, ``std::io``) and, where the statement
    names them, the names taken from it (``*`` for all)."""

    module: str
    names: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Tags:
    definitions: tuple[Definition, ...]
    references: tuple[Reference, ...]
    imports: tuple[Import, ...]


def extract_tags(root: Node, source: bytes, language: Language) -> Tags:
    """Run the language's tags query once over the tree and sort its captures out."""
    captures = QueryCursor(language.query).captures(root)
    definitions = _definitions(captures.get("definition", ()), language, source)
    # in document order: the query's capture lists come in no guaranteed order
    positioned = []
    for capture_name, nodes in captures.items():
        if capture_name.startswith("reference."):
            kind = capture_name.removeprefix("reference.")
            positioned.extend((node.start_byte, kind, node) for node in nodes)
    positioned.sort(key=lambda item: item[:2])
    references = tuple(Reference(node_text(source, node), kind, _line(node)) for _, kind, node in positioned)
    extractor = _IMPORT_EXTRACTORS[language.import_style]
    import_nodes = sorted(captures.get("import", ()), key=lambda node: node.start_byte)
    imports = tuple(item for node in import_nodes for item in extractor(node, source))
    return Tags(tuple(definitions), references, imports)


def _definitions(nodes: Iterable[Node], language: Language, source: bytes) -> list[Definition]:
    """Resolve and qualify definitions. Definitions nest properly, so walking them in document order
    with a stack of the open ones gives each its enclosing definition without climbing the tree."""
    ordered = sorted(nodes, key=lambda node: (node.start_byte, -node.end_byte))
    open_definitions: list[tuple[int, str, str]] = []  # (end byte, symbol, kind)
    result = []
    for node in ordered:
        definition = resolve_definition(node, language, source)
        if definition is None:
            continue
        while open_definitions and open_definitions[-1][0] <= node.start_byte:
            open_definitions.pop()
        enclosing_symbol, enclosing_kind = open_definitions[-1][1:] if open_definitions else (None, None)
        symbol = qualify(enclosing_symbol, definition)
        kind = effective_kind(definition.kind, enclosing_kind)
        result.append(Definition(definition.name, symbol, kind, _line(node), node.end_point.row + 1))
        open_definitions.append((node.end_byte, symbol, kind))
    return result


def _line(node: Node) -> int:
    return node.start_point.row + 1


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`" else text


def _dotted_name(source: bytes, node: Node) -> str:
    """``a.b`` of ``a.b`` or of ``a.b as c``."""
    if node.type == "aliased_import":
        inner = node.child_by_field_name("name")
        node = inner if inner is not None else node
    return node_text(source, node)


def _python_imports(node: Node, source: bytes) -> list[Import]:
    """``import a.b, c as d`` → a.b, c; ``from ..x import y, z`` → ..x with names y, z."""
    names = [_dotted_name(source, child) for child in node.children_by_field_name("name")]
    if node.type == "import_statement":
        return [Import(name, (), _line(node)) for name in names]
    module = node.child_by_field_name("module_name")
    if module is None:
        return []
    if any(child.type == "wildcard_import" for child in node.named_children):
        names.append("*")
    return [Import(node_text(source, module), tuple(names), _line(node))]


def _javascript_imports(node: Node, source: bytes) -> list[Import]:
    """``import d, {a as b} from 'm'`` → m (default, a); ``export {x} from 'm'``; ``require('m')``;
    ``import('m')``."""
    if node.type == "call_expression":
        arguments = node.child_by_field_name("arguments")
        first = arguments.named_children[0] if arguments is not None and arguments.named_children else None
        if first is None or first.type != "string":
            return []
        return [Import(_unquote(node_text(source, first)), (), _line(node))]
    module = node.child_by_field_name("source")
    if module is None:
        return []
    return [Import(_unquote(node_text(source, module)), tuple(_javascript_names(node, source)), _line(node))]


def _javascript_names(node: Node, source: bytes) -> list[str]:
    """The exported names an import or re-export takes: ``default``, ``*`` or the specifiers."""
    names = []
    for child in node.named_children:
        if child.type == "import_clause":
            for part in child.named_children:
                if part.type == "identifier":
                    names.append("default")
                elif part.type == "namespace_import":
                    names.append("*")
                else:
                    names.extend(_specifier_names(part, source))
        elif child.type in {"export_clause", "named_imports"}:
            names.extend(_specifier_names(child, source))
    if node.type == "export_statement" and not names:
        names.append("*")
    return names


def _specifier_names(clause: Node, source: bytes) -> list[str]:
    specifiers = (child.child_by_field_name("name") for child in clause.named_children)
    return [_unquote(node_text(source, name)) for name in specifiers if name is not None]


def _go_imports(node: Node, source: bytes) -> list[Import]:
    """An ``import_spec``: the package path, unquoted."""
    path = node.child_by_field_name("path")
    return [] if path is None else [Import(_unquote(node_text(source, path)), (), _line(node))]


def _rust_imports(node: Node, source: bytes) -> list[Import]:
    """``use a::b::{c, d as e}`` → a::b with names c, d; ``use a::*`` → a with ``*``; ``use a::b``
    → a::b; ``extern crate x`` → x."""
    if node.type == "extern_crate_declaration":
        name = node.child_by_field_name("name")
        return [] if name is None else [Import(node_text(source, name), (), _line(node))]
    argument = node.child_by_field_name("argument")
    if argument is None:
        return []
    module, names = _rust_use_tree(argument, source)
    return [Import(module, names, _line(node))]


def _rust_use_tree(argument: Node, source: bytes) -> tuple[str, tuple[str, ...]]:
    if argument.type == "use_as_clause":
        path = argument.child_by_field_name("path")
        return (node_text(source, path) if path is not None else node_text(source, argument)), ()
    if argument.type == "use_wildcard":
        return node_text(source, argument).removesuffix("*").removesuffix("::"), ("*",)
    if argument.type in {"scoped_use_list", "use_list"}:
        path = argument.child_by_field_name("path")
        items = argument.child_by_field_name("list") if argument.type == "scoped_use_list" else argument
        names = tuple(_rust_use_item(item, source) for item in (items.named_children if items else ()))
        return (node_text(source, path) if path is not None else ""), names
    return " ".join(node_text(source, argument).split()), ()


def _rust_use_item(item: Node, source: bytes) -> str:
    if item.type == "use_as_clause":
        path = item.child_by_field_name("path")
        item = path if path is not None else item
    return " ".join(node_text(source, item).split())


_IMPORT_EXTRACTORS: dict[str, Callable[[Node, bytes], list[Import]]] = {
    "python": _python_imports,
    "javascript": _javascript_imports,
    "go": _go_imports,
    "rust": _rust_imports,
}

__all__ = ["Definition", "Import", "Reference", "Tags", "extract_tags"]
