"""What a definition node is called, what kind it is and where its body is, for every language.

Both the chunker (which cuts along definitions) and the tags extractor (which lists them for the
graph) ask this module, so a chunk's symbol and the stored definition agree on names and kinds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tree_sitter import Node

from .languages import CLASS_LIKE_KINDS, Language

_SIGNATURE_MAX_CHARS = 200
_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class DefinitionNode:
    """A definition found in the tree.

    ``outer`` is the node whose text the chunk takes (decorators, ``export`` included); ``core``
    is the definition itself; ``owner`` qualifies a definition declared outside its type (a Go
    method's receiver), where nesting cannot.
    """

    outer: Node
    core: Node
    name: str
    kind: str
    body: Node | None
    owner: str | None = None


def node_text(source: bytes, node: Node) -> str:
    """A node's source text; bytes that are not UTF-8, and NUL, become U+FFFD (offsets stay byte
    offsets; PostgreSQL's text type refuses NUL)."""
    return source[node.start_byte : node.end_byte].decode("utf-8", "replace").replace("\0", "\ufffd")


def resolve_definition(node: Node, language: Language, source: bytes) -> DefinitionNode | None:
    """The definition ``node`` is (or wraps), or None when it is not one: an anonymous class, a
    ``const`` that binds a number, a grouped Go ``type ( ... )``."""
    core = _unwrap(node, language)
    if core is None:
        return None
    kind = language.definitions.get(core.type)
    if kind is None:
        return None
    special = _SPECIAL_CASES.get(core.type)
    if special is not None:
        return special(node, core, kind, source)
    name = core.child_by_field_name("name")
    if name is None:
        return None
    return DefinitionNode(node, core, node_text(source, name), kind, core.child_by_field_name("body"))


def effective_kind(kind: str, enclosing_kind: str | None) -> str:
    """A function declared in a class, impl or trait body is a method."""
    if kind == "function" and enclosing_kind in CLASS_LIKE_KINDS:
        return "method"
    return kind


def qualify(enclosing_symbol: str | None, definition: DefinitionNode) -> str:
    """``Class.method``: the enclosing definition's symbol (or a Go receiver type), a dot, the name."""
    prefix = enclosing_symbol
    if definition.owner:
        prefix = f"{prefix}.{definition.owner}" if prefix else definition.owner
    return f"{prefix}.{definition.name}" if prefix else definition.name


def signature(definition: DefinitionNode, source: bytes) -> str:
    """The definition's head (up to its body) on one line: ``def f(a, b=1) -> int``. It goes into
    the header of every chunk cut from inside the definition, so a piece of a long function still
    says which function it belongs to."""
    core = definition.core
    end = definition.body.start_byte if definition.body is not None else core.end_byte
    newline = source.find(b"\n", core.start_byte, end)
    if definition.body is None and newline != -1:
        end = newline
    head = " ".join(source[core.start_byte : end].decode("utf-8", "replace").split())
    head = head.rstrip(" {:")
    if len(head) > _SIGNATURE_MAX_CHARS:
        head = head[: _SIGNATURE_MAX_CHARS - 1] + "…"
    return head


def _unwrap(node: Node, language: Language) -> Node | None:
    """Descend through decorators, ``export`` and similar wrappers to the definition inside."""
    core = node
    while core.type in language.wrappers:
        field_name = language.wrappers[core.type]
        if field_name is not None:
            inner = core.child_by_field_name(field_name)
        else:
            named = [child for child in core.named_children if child.type not in language.leading_types]
            inner = named[0] if len(named) == 1 else None
        if inner is None:
            return None
        core = inner
    return core


def _variable_binding(outer: Node, core: Node, kind: str, source: bytes) -> DefinitionNode | None:
    """``const f = (a) => ...`` / ``var C = class { ... }``: a definition when the declaration binds
    exactly one function or class expression to a plain name."""
    declarators = [child for child in core.named_children if child.type == "variable_declarator"]
    if len(declarators) != 1:
        return None
    name = declarators[0].child_by_field_name("name")
    value = declarators[0].child_by_field_name("value")
    if name is None or name.type != "identifier" or value is None:
        return None
    if value.type in _FUNCTION_VALUES:
        kind = "function"
    elif value.type == "class":
        kind = "class"
    else:
        return None
    return DefinitionNode(outer, core, node_text(source, name), kind, value.child_by_field_name("body"))


def _go_type_spec(outer: Node, core: Node, kind: str, source: bytes) -> DefinitionNode | None:
    """``type S struct {...}`` is a struct, ``type I interface {...}`` an interface, others a type."""
    name = core.child_by_field_name("name")
    if name is None:
        return None
    type_node = core.child_by_field_name("type")
    body = None
    if type_node is not None and type_node.type == "struct_type":
        kind, body = "struct", type_node
    elif type_node is not None and type_node.type == "interface_type":
        kind, body = "interface", type_node
    return DefinitionNode(outer, core, node_text(source, name), kind, body)


def _go_method(outer: Node, core: Node, kind: str, source: bytes) -> DefinitionNode | None:
    """``func (s *Server[T]) Start()`` is ``Server.Start``: the receiver's type qualifies it."""
    name = core.child_by_field_name("name")
    if name is None:
        return None
    receiver = core.child_by_field_name("receiver")
    owner = None
    if receiver is not None:
        parameter = next((child for child in receiver.named_children if child.type != "comment"), None)
        type_node = parameter.child_by_field_name("type") if parameter is not None else None
        if type_node is not None:
            owner = _base_type_name(node_text(source, type_node))
    return DefinitionNode(outer, core, node_text(source, name), kind, core.child_by_field_name("body"), owner)


def _rust_impl(outer: Node, core: Node, kind: str, source: bytes) -> DefinitionNode | None:
    """``impl<T> fmt::Display for Wrapper<T>`` is named after the type it implements for:
    ``Wrapper``, so its methods are ``Wrapper.fmt``."""
    type_node = core.child_by_field_name("type")
    if type_node is None:
        return None
    name = _base_type_name(node_text(source, type_node))
    if not name:
        return None
    return DefinitionNode(outer, core, name, kind, core.child_by_field_name("body"))


def _typescript_module(outer: Node, core: Node, kind: str, source: bytes) -> DefinitionNode | None:
    """``declare module "name" { ... }``: the name is a string literal."""
    name = core.child_by_field_name("name")
    if name is None:
        return None
    return DefinitionNode(
        outer, core, node_text(source, name).strip("'\"`"), kind, core.child_by_field_name("body")
    )


def _base_type_name(type_text: str) -> str:
    """``*pkg.Server[T]`` / ``&mut a::B<T>`` → the type's own name: ``Server`` / ``B``."""
    without_generics = re.split(r"[\[<]", type_text, maxsplit=1)[0]
    names = _TYPE_NAME.findall(without_generics.replace("::", "."))
    names = [name for name in names if name not in {"mut", "dyn", "const"}]
    return names[-1] if names else ""


_SPECIAL_CASES: dict[str, Callable[[Node, Node, str, bytes], DefinitionNode | None]] = {
    "lexical_declaration": _variable_binding,
    "variable_declaration": _variable_binding,
    "type_spec": _go_type_spec,
    "method_declaration": _go_method,
    "impl_item": _rust_impl,
    "module": _typescript_module,
}
