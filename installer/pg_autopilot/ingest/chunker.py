"""Cut a source file into chunks along its definitions, and collect its tags.

The unit of retrieval is a definition: a function, a method, a class. Rules, in order:

* A definition of at most ``MAX_CHUNK_BYTES`` (1,500 bytes of source, about 40 lines; the
  size LlamaIndex's and Sweep's code splitters use, and roughly what all-MiniLM-L6-v2 reads
  before it truncates) is kept whole, with the comments and attributes just above it (doc
  comments belong to what they document).
* A larger definition is split recursively along its body's statements (a class into its
  methods, a function into its statements, a huge statement into its parts, a leaf such as a
  long string into lines); every piece keeps the definition's symbol and carries its signature in
  its header, so a piece of a long function still says whose it is.
* Definitions of at least ``SMALL_DEFINITION_BYTES`` (a quarter of the cap) stand alone.
  Everything else (module-level statements, comments, small definitions) is packed greedily with
  its neighbours up to the cap; then a glue-only chunk under ``TINY_CHUNK_BYTES`` joins a
  neighbour (which may then pass the cap by that much). A chunk holding exactly one definition
  takes its symbol and kind; any other takes those of the enclosing definition (``None`` /
  ``module`` at the top level).
* Nothing is lost: chunk boundaries partition the file's bytes, each chunk's text is its share
  without surrounding blank space, and lines are 1-based and inclusive.

Sizes are counted in bytes of source (characters for ASCII); the header line is not counted.
Syntax errors do not stop anything: tree-sitter recovers, and the ERROR / MISSING regions are
counted in :attr:`ParsedFile.syntax_errors`. Offsets are byte offsets; bytes that are not UTF-8,
and NUL (which PostgreSQL's text type refuses), become U+FFFD in the texts only.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass, field
from itertools import pairwise

from tree_sitter import Node

from .definitions import DefinitionNode, effective_kind, qualify, resolve_definition, signature
from .languages import LANGUAGES, Language
from .tags import Definition, Import, Reference, extract_tags

MAX_CHUNK_BYTES = 1500
SMALL_DEFINITION_BYTES = MAX_CHUNK_BYTES // 4
TINY_CHUNK_BYTES = 120
# Below this depth a node still too large is cut into lines: bounded recursion on any input.
MAX_SPLIT_DEPTH = 60
# Bump when the cutting rules change in a way the constants above do not show.
CHUNKER_REVISION = 1


def _chunker_version() -> str:
    """Everything the chunks depend on: the rules, and the parser and grammar versions (a new
    grammar can parse the same file differently). It goes into the embedding cache key and marks
    files to parse again."""
    packages = ["tree-sitter", *sorted({language.grammar_package for language in LANGUAGES})]
    versions = []
    for package in packages:
        try:
            versions.append(f"{package}={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package}=unknown")
    rules = f"r{CHUNKER_REVISION},{MAX_CHUNK_BYTES}/{SMALL_DEFINITION_BYTES}/{TINY_CHUNK_BYTES}"
    return f"chunker {rules};" + ",".join(versions)


CHUNKER_VERSION = _chunker_version()
_NON_SPACE = re.compile(rb"\S")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a file to embed and search. ``text`` starts with a header line (a comment in the
    file's language naming the path and the enclosing definitions' signatures); ``start_byte`` /
    ``end_byte`` delimit the source text after it."""

    text: str
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    language: str
    start_byte: int
    end_byte: int


@dataclass(frozen=True, slots=True)
class ParsedFile:
    path: str
    language: str
    chunks: tuple[Chunk, ...]
    definitions: tuple[Definition, ...]
    references: tuple[Reference, ...]
    imports: tuple[Import, ...]
    syntax_errors: int
    line_count: int


def chunk_source(path: str, source: bytes, language: Language) -> ParsedFile:
    """Parse ``source`` (the file at ``path``, relative to its codebase) and return its chunks and
    tags. Never raises on bad input: broken syntax and invalid UTF-8 still give chunks."""
    root = language.parser().parse(source).root_node
    pieces = _Cutter(source, language).cut(root)
    chunks = _ChunkWriter(path, source, language).write(pieces)
    tags = extract_tags(root, source, language)
    line_count = source.count(b"\n") + (1 if source and not source.endswith(b"\n") else 0)
    return ParsedFile(
        path=path,
        language=language.name,
        chunks=tuple(chunks),
        definitions=tags.definitions,
        references=tags.references,
        imports=tags.imports,
        syntax_errors=count_syntax_errors(root),
        line_count=line_count,
    )


def count_syntax_errors(root: Node) -> int:
    """The number of ERROR regions and MISSING tokens tree-sitter recovered from. Only subtrees
    flagged ``has_error`` are visited, so a clean file costs one attribute read."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
            continue
        stack.extend(child for child in node.children if child.has_error or child.is_missing)
    return count


@dataclass(frozen=True, slots=True)
class _Scope:
    """The definition a piece lies in: its symbol and kind, and the signatures from the top down."""

    symbol: str | None
    kind: str
    signatures: tuple[str, ...]


_MODULE_SCOPE = _Scope(None, "module", ())


@dataclass(slots=True)
class _Piece:
    """A byte range on its way to becoming a chunk. ``definitions`` are (symbol, kind) of the whole
    definitions in it; ``standalone`` marks one that must not share a chunk with another; ``sealed``
    marks a piece of a split definition, which is packed already and merges with nothing else."""

    start: int
    end: int
    scope: _Scope
    definitions: list[tuple[str, str]] = field(default_factory=list)
    standalone: bool = False
    sealed: bool = False

    def absorb(self, other: _Piece) -> None:
        self.end = other.end
        self.definitions.extend(other.definitions)
        self.standalone = self.standalone or other.standalone


class _Cutter:
    """Turns a syntax tree into ordered, non-overlapping pieces (see the module docstring)."""

    def __init__(self, source: bytes, language: Language):
        self.source = source
        self.language = language
        # the node types worth asking resolve_definition about (most statements are not)
        self.candidate_types = frozenset(language.definitions) | frozenset(language.wrappers)

    def cut(self, root: Node) -> list[_Piece]:
        return _coalesce(_pack(self._units(root.named_children, _MODULE_SCOPE, 0)))

    def _units(self, children: list[Node], scope: _Scope, depth: int) -> list[_Piece]:
        """One unit per child, definitions carrying the comments just above them."""
        units: list[_Piece] = []
        leading: list[Node] = []
        previous_end_row = -1
        for child in children:
            child_type = child.type
            # a comment on the line a statement ends on belongs to that statement
            if child_type in self.language.leading_types and child.start_point.row != previous_end_row:
                leading.append(child)
                continue
            definition = None
            if child_type in self.candidate_types:
                definition = resolve_definition(child, self.language, self.source)
            if definition is not None:
                start = leading[0].start_byte if leading else child.start_byte
                units.extend(self._definition_units(child, definition, start, scope, depth))
            else:
                for node in [*leading, child]:
                    units.extend(self._statement_units(node, scope, depth))
            leading = []
            previous_end_row = child.end_point.row
        for node in leading:
            units.extend(self._statement_units(node, scope, depth))
        return units

    def _definition_units(
        self, node: Node, definition: DefinitionNode, start: int, scope: _Scope, depth: int
    ) -> list[_Piece]:
        """A definition within the cap is one unit; a larger one is split, its pieces sealed."""
        symbol = qualify(scope.symbol, definition)
        kind = effective_kind(definition.kind, scope.kind)
        size = node.end_byte - start
        if size <= MAX_CHUNK_BYTES:
            return [_Piece(start, node.end_byte, scope, [(symbol, kind)], size >= SMALL_DEFINITION_BYTES)]
        inner = _Scope(symbol, kind, (*scope.signatures, signature(definition, self.source)))
        container = definition.body if definition.body is not None else definition.core
        pieces = _coalesce(_pack(self._split(node, container, start, inner, depth + 1)))
        for piece in pieces:
            piece.sealed = True
        return pieces

    def _statement_units(self, node: Node, scope: _Scope, depth: int) -> list[_Piece]:
        """A statement that is not a definition: one unit, or its parts when it is too large (a
        huge ``if`` block, a long literal), so definitions nested in it still get chunks."""
        if node.end_byte - node.start_byte <= MAX_CHUNK_BYTES:
            return [_Piece(node.start_byte, node.end_byte, scope)]
        return self._split(node, node, node.start_byte, scope, depth + 1)

    def _split(self, node: Node, container: Node, start: int, scope: _Scope, depth: int) -> list[_Piece]:
        """Units for ``node`` cut along ``container``'s children: its head (signature, opening
        brace) up to the first child, the children, and its tail (closing brace) added to the last."""
        children = [] if _is_text(container) else self._children(container)
        if not children or depth > MAX_SPLIT_DEPTH:
            return self._lines(start, node.end_byte, scope)
        units = self._lines(start, children[0].start_byte, scope)
        units.extend(self._units(children, scope, depth))
        units[-1].end = max(units[-1].end, node.end_byte)
        return units

    def _children(self, node: Node) -> list[Node]:
        """The named children to cut along, looking through single-child wrappers (Go's
        ``statement_list``, a ``try`` alone in a function) to where the parts are."""
        children = node.named_children
        while (
            len(children) == 1
            and children[0].named_child_count
            and not _is_text(children[0])
            and resolve_definition(children[0], self.language, self.source) is None
        ):
            children = children[0].named_children
        return children

    def _lines(self, start: int, end: int, scope: _Scope) -> list[_Piece]:
        """Cut a range with no usable structure at line ends, at most the cap each; a single line
        longer than the cap is cut at a UTF-8 character boundary."""
        pieces = []
        position = start
        while position < end:
            cut = end
            if end - position > MAX_CHUNK_BYTES:
                limit = position + MAX_CHUNK_BYTES
                cut = self.source.rfind(b"\n", position, limit) + 1
                if cut <= position:
                    cut = _character_boundary(self.source, limit, position)
            pieces.append(_Piece(position, cut, scope))
            position = cut
        return pieces


def _is_text(node: Node) -> bool:
    """Strings and comments are cut into lines, not into their tokens: cutting after a string's
    opening quote would leave a chunk holding just the quote."""
    return "string" in node.type or "comment" in node.type


def _character_boundary(source: bytes, limit: int, floor: int) -> int:
    """The nearest offset at or before ``limit`` that does not fall inside a UTF-8 sequence."""
    cut = limit
    while cut > floor + 1 and 0x80 <= source[cut] < 0xC0:
        cut -= 1
    return cut


def _mergeable(first: _Piece, second: _Piece, slack: int = 0) -> bool:
    if first.sealed or second.sealed:
        return False
    return second.end - first.start <= MAX_CHUNK_BYTES + slack


def _pack(units: list[_Piece]) -> list[_Piece]:
    """Greedy packing of neighbours up to the cap; two standalone definitions never share a chunk,
    and glue never joins a standalone definition here (only tiny glue does, in :func:`_coalesce`)."""
    packed: list[_Piece] = []
    for unit in units:
        previous = packed[-1] if packed else None
        if (
            previous is not None
            and not previous.standalone
            and not unit.standalone
            and _mergeable(previous, unit)
        ):
            previous.absorb(unit)
        else:
            packed.append(unit)
    return packed


def _is_tiny_glue(piece: _Piece) -> bool:
    return not piece.definitions and piece.end - piece.start < TINY_CHUNK_BYTES


def _coalesce(pieces: list[_Piece]) -> list[_Piece]:
    """A glue-only piece too small to be worth a search hit of its own (a closing ``main()`` call,
    the last ``return`` of a split function) joins its neighbour, which may then pass the cap by at
    most ``TINY_CHUNK_BYTES``."""
    result: list[_Piece] = []
    for piece in pieces:
        previous = result[-1] if result else None
        if (
            previous is not None
            and (_is_tiny_glue(piece) or _is_tiny_glue(previous))
            and _mergeable(previous, piece, slack=TINY_CHUNK_BYTES)
        ):
            previous.absorb(piece)
        else:
            result.append(piece)
    return result


class _LineCounter:
    """Line numbers of increasing offsets, counting newlines once over the file."""

    def __init__(self, source: bytes):
        self.source = source
        self.offset = 0
        self.line = 1

    def line_of(self, offset: int) -> int:
        if offset < self.offset:
            return self.source.count(b"\n", 0, offset) + 1
        self.line += self.source.count(b"\n", self.offset, offset)
        self.offset = offset
        return self.line


class _ChunkWriter:
    """Turns pieces into chunks: boundaries that cover the whole file, text, lines, header."""

    def __init__(self, path: str, source: bytes, language: Language):
        # the header is one line of valid UTF-8 whatever the file is called
        self.header_path = _CONTROL.sub(
            "?", path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        )
        self.source = source
        self.language = language
        self.lines = _LineCounter(source)

    def write(self, pieces: list[_Piece]) -> list[Chunk]:
        if not pieces:
            return []
        bounds = [0, *(self._boundary(prev, piece) for prev, piece in pairwise(pieces)), len(self.source)]
        shares = zip(pieces, pairwise(bounds), strict=True)
        chunks = (self._chunk(piece, start, end) for piece, (start, end) in shares)
        return [chunk for chunk in chunks if chunk is not None]

    def _boundary(self, previous: _Piece, piece: _Piece) -> int:
        """Where ``piece``'s share begins: the start of its first line when only indentation
        precedes it there (so the chunk keeps its indentation), else its first byte."""
        line_start = self.source.rfind(b"\n", 0, piece.start) + 1
        if line_start > previous.start and not self.source[line_start : piece.start].strip():
            return line_start
        return piece.start

    def _chunk(self, piece: _Piece, start: int, end: int) -> Chunk | None:
        match = _NON_SPACE.search(self.source, start, end)
        if match is None:
            return None
        first = match.start()
        last = start + len(self.source[start:end].rstrip())
        text_start = max(start, self.source.rfind(b"\n", 0, first) + 1)
        if len(piece.definitions) == 1:
            symbol, kind = piece.definitions[0]
        else:
            symbol, kind = piece.scope.symbol, piece.scope.kind
        header = " | ".join([f"{self.language.line_comment} {self.header_path}", *piece.scope.signatures])
        body = self.source[text_start:last].decode("utf-8", "replace").replace("\0", "\ufffd")
        return Chunk(
            text=f"{header}\n{body}",
            start_line=self.lines.line_of(first),
            end_line=self.lines.line_of(last - 1),
            symbol=symbol,
            kind=kind,
            language=self.language.name,
            start_byte=text_start,
            end_byte=last,
        )
