"""The languages code-ingest parses: which file extensions, which grammar, what a definition is.

A :class:`Language` is plain data: the chunker and the tags extractor read it, so adding a language
means adding a record here (and its grammar wheel to the dependencies), not new chunking code.
Grammars come from the per-language wheels (``tree-sitter-python`` ...), which ship compiled
parsers: nothing is downloaded at run time, so ingest works offline. Each grammar is loaded on
first use and kept for the life of the process.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import tree_sitter

# Kinds whose nested functions are methods (a function defined in a class, impl or trait body).
CLASS_LIKE_KINDS = frozenset({"class", "interface", "impl", "trait", "struct", "enum", "object"})


@dataclass(frozen=True, eq=False)
class Language:
    """One language: its grammar, its definition node types and its tags query.

    ``definitions`` maps a tree-sitter node type to the kind of definition it is; a function
    nested in a class-like definition is reported as a method whatever its node type.
    ``wrappers`` maps node types that wrap a definition (Python decorators, ``export``, Go's
    ``type``) to the field holding it (``None``: its single named child), so the chunk keeps
    the decorators or the ``export`` keyword while the definition gives the name and kind.
    ``leading_types`` are nodes that belong to the definition after them (doc comments, Rust
    attributes). ``tags_query`` captures ``reference.<kind>`` names and ``import`` statements;
    the definition captures are generated from ``definitions``.
    """

    name: str
    extensions: tuple[str, ...]
    grammar_package: str
    grammar_module: str
    grammar_function: str
    line_comment: str
    definitions: Mapping[str, str]
    wrappers: Mapping[str, str | None]
    leading_types: frozenset[str]
    tags_query: str
    import_style: str

    @property
    def grammar(self) -> tree_sitter.Language:
        """The compiled grammar, loaded once per process."""
        return _load_grammar(self.grammar_module, self.grammar_function)

    @property
    def query(self) -> tree_sitter.Query:
        """The combined definitions + references + imports query, compiled once per process."""
        return _compile_query(self)

    @property
    def grammar_version(self) -> str:
        """The grammar wheel's version: a new grammar can parse the same file differently."""
        return _package_version(self.grammar_package)

    def parser(self) -> tree_sitter.Parser:
        """A new parser (parsers are not thread-safe; one is cheap to make)."""
        return tree_sitter.Parser(self.grammar)


@functools.cache
def _load_grammar(module: str, function: str) -> tree_sitter.Language:
    return tree_sitter.Language(getattr(importlib.import_module(module), function)())


@functools.cache
def _compile_query(language: Language) -> tree_sitter.Query:
    definition_types = " ".join(f"({node_type})" for node_type in language.definitions)
    source = f"[{definition_types}] @definition\n{language.tags_query}"
    return tree_sitter.Query(language.grammar, source)


@functools.cache
def _package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_PYTHON_TAGS = """
(call function: (identifier) @reference.call)
(call function: (attribute attribute: (identifier) @reference.call))
(class_definition superclasses: (argument_list (identifier) @reference.class))
(class_definition superclasses: (argument_list (attribute attribute: (identifier) @reference.class)))
(import_statement) @import
(import_from_statement) @import
"""

_JAVASCRIPT_TAGS = """
((call_expression function: (identifier) @reference.call) (#not-eq? @reference.call "require"))
(call_expression function: (member_expression property: (property_identifier) @reference.call))
(new_expression constructor: (identifier) @reference.class)
(new_expression constructor: (member_expression property: (property_identifier) @reference.class))
(import_statement) @import
(export_statement source: (string)) @import
((call_expression function: (identifier) @_require arguments: (arguments . (string)))
  @import (#eq? @_require "require"))
(call_expression function: (import) arguments: (arguments . (string))) @import
"""

_JAVASCRIPT_HERITAGE = """
(class_heritage (identifier) @reference.class)
(class_heritage (member_expression property: (property_identifier) @reference.class))
"""

_TYPESCRIPT_HERITAGE = """
(extends_clause value: (identifier) @reference.class)
(extends_clause value: (member_expression property: (property_identifier) @reference.class))
(implements_clause (type_identifier) @reference.class)
(extends_type_clause type: (type_identifier) @reference.class)
"""

_GO_TAGS = """
(call_expression function: (identifier) @reference.call)
(call_expression function: (selector_expression field: (field_identifier) @reference.call))
(composite_literal type: (type_identifier) @reference.class)
(import_spec) @import
"""

_RUST_TAGS = """
(call_expression function: (identifier) @reference.call)
(call_expression function: (field_expression field: (field_identifier) @reference.call))
(call_expression function: (scoped_identifier name: (identifier) @reference.call))
(macro_invocation macro: (identifier) @reference.call)
(impl_item trait: (type_identifier) @reference.class)
(impl_item trait: (scoped_type_identifier name: (type_identifier) @reference.class))
(use_declaration) @import
(extern_crate_declaration) @import
"""

_JS_DEFINITIONS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    # only when the declaration binds one arrow function, function or class expression
    "lexical_declaration": "function",
    "variable_declaration": "function",
}

_TS_DEFINITIONS = {
    **_JS_DEFINITIONS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "type_alias_declaration": "type",
    "internal_module": "module",
    "module": "module",
    "function_signature": "function",
    "method_signature": "method",
    "abstract_method_signature": "method",
}

_JS_WRAPPERS = {"export_statement": "declaration"}
_TS_WRAPPERS = {"export_statement": "declaration", "expression_statement": None, "ambient_declaration": None}


def _typescript(name: str, extensions: tuple[str, ...], function: str) -> Language:
    return Language(
        name=name,
        extensions=extensions,
        grammar_package="tree-sitter-typescript",
        grammar_module="tree_sitter_typescript",
        grammar_function=function,
        line_comment="//",
        definitions=_TS_DEFINITIONS,
        wrappers=_TS_WRAPPERS,
        leading_types=frozenset({"comment"}),
        tags_query=_JAVASCRIPT_TAGS + _TYPESCRIPT_HERITAGE,
        import_style="javascript",
    )


PYTHON = Language(
    name="python",
    extensions=(".py",),
    grammar_package="tree-sitter-python",
    grammar_module="tree_sitter_python",
    grammar_function="language",
    line_comment="#",
    definitions={"function_definition": "function", "class_definition": "class"},
    wrappers={"decorated_definition": "definition"},
    leading_types=frozenset({"comment"}),
    tags_query=_PYTHON_TAGS,
    import_style="python",
)

JAVASCRIPT = Language(
    name="javascript",
    extensions=(".js", ".mjs", ".cjs", ".jsx"),
    grammar_package="tree-sitter-javascript",
    grammar_module="tree_sitter_javascript",
    grammar_function="language",
    line_comment="//",
    definitions=_JS_DEFINITIONS,
    wrappers=_JS_WRAPPERS,
    leading_types=frozenset({"comment"}),
    tags_query=_JAVASCRIPT_TAGS + _JAVASCRIPT_HERITAGE,
    import_style="javascript",
)

TYPESCRIPT = _typescript("typescript", (".ts",), "language_typescript")
TSX = _typescript("tsx", (".tsx",), "language_tsx")

GO = Language(
    name="go",
    extensions=(".go",),
    grammar_package="tree-sitter-go",
    grammar_module="tree_sitter_go",
    grammar_function="language",
    line_comment="//",
    definitions={"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
    # `type X struct {...}`: the declaration wraps one spec; a grouped `type ( ... )` stays glue
    wrappers={"type_declaration": None},
    leading_types=frozenset({"comment"}),
    tags_query=_GO_TAGS,
    import_style="go",
)

RUST = Language(
    name="rust",
    extensions=(".rs",),
    grammar_package="tree-sitter-rust",
    grammar_module="tree_sitter_rust",
    grammar_function="language",
    line_comment="//",
    definitions={
        "function_item": "function",
        "function_signature_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "union_item": "union",
        "trait_item": "trait",
        "impl_item": "impl",
        "mod_item": "module",
        "macro_definition": "macro",
        "type_item": "type",
    },
    wrappers={},
    leading_types=frozenset({"line_comment", "block_comment", "attribute_item"}),
    tags_query=_RUST_TAGS,
    import_style="rust",
)

LANGUAGES: tuple[Language, ...] = (PYTHON, JAVASCRIPT, TYPESCRIPT, TSX, GO, RUST)
_BY_EXTENSION = {extension: language for language in LANGUAGES for extension in language.extensions}


def language_for_path(path: str) -> Language | None:
    """The language of a file by its extension (case-insensitive); None when it is not one we parse,
    so the caller skips the file and counts it."""
    return _BY_EXTENSION.get(PurePosixPath(path).suffix.lower())


def language_by_name(name: str) -> Language | None:
    """The language record for a stored language name (``python``, ``tsx`` ...)."""
    return next((language for language in LANGUAGES if language.name == name), None)
