"""The chunker and the tags extractor (pg_autopilot.ingest): pure, no database.

Every language gets a realistic file of the same shape: a leading comment and imports, a class
(or struct and impl) too large for one chunk with two medium methods, one holding a nested
function, and three tiny ones, two tiny top-level functions, a function far over the cap, and
module-level code at the end. The shared checks prove that nothing of the file is lost and that
lines, byte offsets and headers agree with the source.
"""

from __future__ import annotations

import itertools
import textwrap

import pytest

from pg_autopilot.ingest import chunker
from pg_autopilot.ingest.chunker import (
    CHUNKER_VERSION,
    MAX_CHUNK_BYTES,
    SMALL_DEFINITION_BYTES,
    TINY_CHUNK_BYTES,
    ParsedFile,
    chunk_source,
)
from pg_autopilot.ingest.languages import GO, JAVASCRIPT, PYTHON, RUST, TSX, TYPESCRIPT, language_for_path


def lines_of(statement: str, count: int, indent: str) -> str:
    """``count`` distinct statements (``{i}`` numbered), one a line."""
    return "\n".join(indent + statement.format(i=i) for i in range(count))


PYTHON_SAMPLE = f'''\
"""Inventory helpers: weigh items and report totals."""
import os.path
from collections import OrderedDict as Ordered

LIMIT = 10


class Inventory(Base):
    """Items in stock, by name."""

    def weigh(self, item):
        # the weight of one item, with its packaging
        total = 0
{lines_of("total = total + measure(item, {i})", 18, "        ")}
        return total

    def report(self, items):
        def describe(entry):
            return "%s: %s" % (entry, self.weigh(entry))

{lines_of("self.log.write(describe(items[{i}]))", 14, "        ")}
        return len(items)

    def size(self):
        return len(self.items)

    def empty(self):
        return not self.items

    def first(self):
        return self.items[0]


def tiny_one():
    return 1


def tiny_two():
    return 2


def process_all(values, offset=0):
    """Add up every value, the long way."""
{lines_of("value_{i} = transform(values[{i}]) + offset", 70, "    ")}
    return value_0 + value_69


if __name__ == "__main__":
    process_all([1, 2, 3])
'''

JAVASCRIPT_SAMPLE = f"""\
// Inventory helpers: weigh items and report totals.
import {{ readFile }} from "node:fs";
const path = require("path");

const LIMIT = 10;

/** Items in stock, by name. */
export class Inventory extends Base {{
  weigh(item) {{
    // the weight of one item, with its packaging
    let total = 0;
{lines_of("total = total + measure(item, {i});", 18, "    ")}
    return total;
  }}

  report(items) {{
    function describe(entry) {{
      return `${{entry}}: ${{this.weigh(entry)}}`;
    }}
{lines_of("this.log.write(describe(items[{i}]));", 14, "    ")}
    return items.length;
  }}

  size() {{ return this.items.length; }}

  empty() {{ return this.items.length === 0; }}

  first() {{ return this.items[0]; }}
}}

function tinyOne() {{ return 1; }}

const tinyTwo = () => 2;

export async function processAll(values, offset) {{
{lines_of("const value{i} = transform(values[{i}]) + offset;", 70, "  ")}
  return value0 + value69;
}}

processAll([1, 2, 3]);
"""

TYPESCRIPT_SAMPLE = f"""\
// Inventory helpers: weigh items and report totals.
import {{ Item }} from "./item";

const LIMIT: number = 10;

/** Items in stock, by name. */
export class Inventory extends Base implements Store {{
  weigh(item: Item): number {{
    // the weight of one item, with its packaging
    let total = 0;
{lines_of("total = total + measure(item, {i});", 18, "    ")}
    return total;
  }}

  report(items: Item[]): number {{
    function describe(entry: Item): string {{
      return `${{entry}}: ${{this.weigh(entry)}}`;
    }}
{lines_of("this.log.write(describe(items[{i}]));", 14, "    ")}
    return items.length;
  }}

  size(): number {{ return this.items.length; }}

  empty(): boolean {{ return this.items.length === 0; }}

  first(): Item {{ return this.items[0]; }}
}}

function tinyOne(): number {{ return 1; }}

const tinyTwo = (): number => 2;

export function processAll(values: number[], offset: number): number {{
{lines_of("const value{i} = transform(values[{i}]) + offset;", 70, "  ")}
  return value0 + value69;
}}

processAll([1, 2, 3], 0);
"""

GO_SAMPLE = f"""\
// Package inventory weighs items and reports totals.
package inventory

import (
\t"fmt"
\tstr "strings"
)

const Limit = 10

// Inventory holds items in stock, by name.
type Inventory struct {{
\titems []string
\tlog   *Log
}}

// Weigh returns the weight of one item, with its packaging.
func (inv *Inventory) Weigh(item string) int {{
\ttotal := 0
{lines_of("total = total + measure(item, {i})", 18, "	")}
\treturn total
}}

// Report writes every item's weight.
func (inv *Inventory) Report(items []string) int {{
\tdescribe := func(entry string) string {{
\t\treturn fmt.Sprintf("%s: %d", entry, inv.Weigh(entry))
\t}}
{lines_of("inv.log.Write(describe(items[{i}]))", 14, "	")}
\treturn len(items)
}}

func (inv *Inventory) Size() int {{ return len(inv.items) }}

func (inv *Inventory) Empty() bool {{ return len(inv.items) == 0 }}

func (inv *Inventory) First() string {{ return inv.items[0] }}

func tinyOne() int {{ return 1 }}

func tinyTwo() int {{ return 2 }}

func ProcessAll(values []int, offset int) int {{
{lines_of("value{i} := transform(values[{i}]) + offset", 70, "	")}
\treturn value0 + value69
}}

var defaultInventory = Inventory{{}}
"""

RUST_SAMPLE = f"""\
//! Inventory helpers: weigh items and report totals.
use std::collections::{{HashMap, HashSet as Set}};
use crate::log::Log;

const LIMIT: usize = 10;

/// Items in stock, by name.
#[derive(Debug)]
pub struct Inventory {{
    items: Vec<String>,
    log: Log,
}}

impl Inventory {{
    /// The weight of one item, with its packaging.
    pub fn weigh(&self, item: &str) -> i64 {{
        let mut total = 0;
{lines_of("total = total + measure(item, {i});", 18, "        ")}
        total
    }}

    pub fn report(&mut self, items: &[String]) -> usize {{
        fn describe(entry: &str) -> String {{
            format!("{{}}: done", entry)
        }}
{lines_of("self.log.write(describe(&items[{i}]));", 14, "        ")}
        items.len()
    }}

    pub fn size(&self) -> usize {{ self.items.len() }}

    pub fn empty(&self) -> bool {{ self.items.is_empty() }}

    pub fn first(&self) -> &str {{ &self.items[0] }}
}}

fn tiny_one() -> i64 {{ 1 }}

fn tiny_two() -> i64 {{ 2 }}

pub fn process_all(values: &[i64], offset: i64) -> i64 {{
{lines_of("let value_{i} = transform(values[{i}]) + offset;", 70, "    ")}
    value_0 + value_69
}}

static DEFAULT: Set<i64> = Set::new();
"""

# (language, source, class symbol, method symbols, tiny top-level names, huge function, tail code)
SAMPLES = {
    "python": (PYTHON, PYTHON_SAMPLE, "Inventory", ("weigh", "report"), ("tiny_one", "tiny_two"),
               "process_all", 'process_all([1, 2, 3])'),
    "javascript": (JAVASCRIPT, JAVASCRIPT_SAMPLE, "Inventory", ("weigh", "report"), ("tinyOne", "tinyTwo"),
                   "processAll", "processAll([1, 2, 3]);"),
    "typescript": (TYPESCRIPT, TYPESCRIPT_SAMPLE, "Inventory", ("weigh", "report"), ("tinyOne", "tinyTwo"),
                   "processAll", "processAll([1, 2, 3], 0);"),
    "go": (GO, GO_SAMPLE, "Inventory", ("Weigh", "Report"), ("tinyOne", "tinyTwo"),
           "ProcessAll", "var defaultInventory = Inventory{}"),
    "rust": (RUST, RUST_SAMPLE, "Inventory", ("weigh", "report"), ("tiny_one", "tiny_two"),
             "process_all", "static DEFAULT: Set<i64> = Set::new();"),
}  # fmt: skip


def assert_consistent(parsed: ParsedFile, source: bytes, path: str, comment: str) -> None:
    """Nothing lost, nothing twice, and every chunk's lines, offsets and text agree with the source."""
    covered = bytearray(len(source))
    previous_end = 0
    for chunk in parsed.chunks:
        assert previous_end <= chunk.start_byte < chunk.end_byte, "chunks overlap or are out of order"
        previous_end = chunk.end_byte
        covered[chunk.start_byte : chunk.end_byte] = b"\x01" * (chunk.end_byte - chunk.start_byte)
        header, _, body = chunk.text.partition("\n")
        assert header.startswith(f"{comment} {path}")
        assert body == source[chunk.start_byte : chunk.end_byte].decode("utf-8", "replace")
        assert body.strip(), "an empty chunk"
        assert chunk.start_line == source.count(b"\n", 0, chunk.start_byte) + 1
        assert chunk.end_line == source.count(b"\n", 0, chunk.end_byte - 1) + 1
        assert chunk.start_line <= chunk.end_line
        assert chunk.end_byte - chunk.start_byte <= MAX_CHUNK_BYTES + TINY_CHUNK_BYTES + 80
        assert chunk.language == parsed.language
    lost = [index for index, byte in enumerate(source) if not covered[index] and not chr(byte).isspace()]
    assert not lost, f"bytes in no chunk: {source[lost[0] : lost[0] + 40]!r}"


def line_of(source: str, needle: str) -> int:
    index = source.index(needle)
    return source.count("\n", 0, index) + 1


def chunks_with(parsed: ParsedFile, needle: str):
    return [chunk for chunk in parsed.chunks if needle in chunk.text.partition("\n")[2]]


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_is_cut_along_definitions(name: str) -> None:
    language, source, cls, methods, tiny, huge, tail = SAMPLES[name]
    path = f"src/inventory{language.extensions[0]}"
    parsed = chunk_source(path, source.encode(), language)
    assert parsed.language == language.name
    assert parsed.syntax_errors == 0
    assert parsed.line_count == source.count("\n")
    assert_consistent(parsed, source.encode(), path, language.line_comment)

    # the medium methods stand alone, qualified by their class (a Go method by its receiver type)
    for method in methods:
        (chunk,) = [chunk for chunk in parsed.chunks if chunk.symbol == f"{cls}.{method}"]
        assert chunk.kind == "method"
        assert chunk.end_byte - chunk.start_byte >= SMALL_DEFINITION_BYTES
        assert chunk.start_line <= line_of(source, f"{method}(") <= chunk.end_line
        if name != "go":  # a Go method is declared outside its type: no enclosing signature
            assert "Inventory" in chunk.text.partition("\n")[0], "the header names the enclosing class"

    # the tiny methods share one chunk, which then belongs to the class
    size, empty, first = ("Size", "Empty", "First") if name == "go" else ("size", "empty", "first")
    (small,) = chunks_with(parsed, f"{size}(")
    assert f"{empty}(" in small.text and f"{first}(" in small.text
    if name != "go":  # Go's methods are top-level declarations: they merge with the functions
        assert (small.symbol, small.kind) == (cls, "impl" if name == "rust" else "class")

    # tiny top-level functions are merged with their neighbours
    (merged,) = chunks_with(parsed, f"{tiny[0]}(")
    assert f"{tiny[1]} " in merged.text or f"{tiny[1]}(" in merged.text

    # the huge function is split; each piece keeps its symbol and says its signature in the header
    pieces = [chunk for chunk in parsed.chunks if chunk.symbol == huge]
    assert len(pieces) >= 2
    assert all(piece.kind == "function" for piece in pieces)
    assert all(f"{huge}(" in piece.text.partition("\n")[0] for piece in pieces)
    (definition,) = [definition for definition in parsed.definitions if definition.symbol == huge]
    assert pieces[0].start_line == definition.line == line_of(source, f"{huge}(")
    assert all(b.start_line == a.end_line + 1 for a, b in itertools.pairwise(pieces))
    assert pieces[-1].end_line == definition.end_line

    # module-level code is kept, at its lines
    (end,) = chunks_with(parsed, tail)
    assert end.end_line == line_of(source, tail)
    (top,) = [chunk for chunk in parsed.chunks if chunk.start_line == 1]
    assert "import" in top.text or "use " in top.text


def test_python_class_over_the_cap_keeps_decorators_docstring_and_nested_symbols() -> None:
    source = PYTHON_SAMPLE.encode()
    parsed = chunk_source("inventory.py", source, PYTHON)
    # the class head is tiny: it joins the first method rather than make a chunk of two lines
    (head,) = chunks_with(parsed, "class Inventory(Base):")
    assert head.start_line == line_of(PYTHON_SAMPLE, "class Inventory(Base):")
    assert '"""Items in stock, by name."""' in head.text
    long_docstring = PYTHON_SAMPLE.replace("by name.", "by name.\n\n    " + "More words. " * 20)
    parsed_long = chunk_source("inventory.py", long_docstring.encode(), PYTHON)
    (head,) = chunks_with(parsed_long, "class Inventory(Base):")
    assert (head.symbol, head.kind) == ("Inventory", "class")
    (report,) = [chunk for chunk in parsed.chunks if chunk.symbol == "Inventory.report"]
    assert "def describe(entry):" in report.text, "a nested function stays inside its function"
    symbols = {definition.symbol: definition.kind for definition in parsed.definitions}
    assert symbols["Inventory.report.describe"] == "function"
    assert symbols["Inventory.weigh"] == "method"
    assert symbols["process_all"] == "function"

    decorated = b"@cache\n@other(1)\n" + source[source.index(b"def tiny_one") :]
    parsed = chunk_source("d.py", decorated, PYTHON)
    assert parsed.chunks[0].text.partition("\n")[2].startswith("@cache\n@other(1)\ndef tiny_one")


def test_comment_above_a_definition_goes_with_it() -> None:
    parsed = chunk_source("inventory.go", GO_SAMPLE.encode(), GO)
    (weigh,) = [chunk for chunk in parsed.chunks if chunk.symbol == "Inventory.Weigh"]
    assert weigh.text.partition("\n")[2].startswith("// Weigh returns the weight of one item")
    (struct,) = [chunk for chunk in parsed.chunks if chunk.symbol == "Inventory"]
    assert struct.kind == "struct"
    parsed = chunk_source("inventory.rs", RUST_SAMPLE.encode(), RUST)
    kinds = {chunk.symbol: chunk.kind for chunk in parsed.chunks}
    assert kinds["Inventory.weigh"] == "method"
    (weigh,) = [chunk for chunk in parsed.chunks if chunk.symbol == "Inventory.weigh"]
    assert "/// The weight of one item" in weigh.text
    assert "impl Inventory" in weigh.text.partition("\n")[0]


def test_a_trailing_comment_stays_with_its_statement() -> None:
    table = "TABLE = {\n" + "".join(f"    'key{i}': {i},\n" for i in range(12)) + "}  # the lookup table\n"
    function = PYTHON_SAMPLE[PYTHON_SAMPLE.index("def process_all") :]
    source = f"{table}{function}".encode()
    parsed = chunk_source("t.py", source, PYTHON)
    assert_consistent(parsed, source, "t.py", "#")
    assert parsed.chunks[0].text.endswith("}  # the lookup table")
    assert parsed.chunks[1].text.partition("\n")[2].startswith("def process_all")


def test_tsx_component() -> None:
    source = textwrap.dedent("""\
        import React from "react";

        export function Badge({ label }: { label: string }) {
          const text = label.toUpperCase();
          return <span className="badge">{format(text)}</span>;
        }
        """).encode()
    parsed = chunk_source("badge.tsx", source, TSX)
    assert parsed.syntax_errors == 0
    assert_consistent(parsed, source, "badge.tsx", "//")
    assert ("Badge", "function", 3) in {(d.symbol, d.kind, d.line) for d in parsed.definitions}
    assert "format" in {reference.name for reference in parsed.references}


def test_syntax_error_still_yields_chunks_and_is_counted() -> None:
    # a local error: tree-sitter recovers within the statement, the rest is cut as usual
    source = PYTHON_SAMPLE.replace("return len(self.items)", "return len(self.items))").encode()
    parsed = chunk_source("broken.py", source, PYTHON)
    assert parsed.syntax_errors == 1
    assert_consistent(parsed, source, "broken.py", "#")
    assert {"Inventory.weigh", "process_all"} <= {chunk.symbol for chunk in parsed.chunks}
    assert "tiny_two" in {definition.name for definition in parsed.definitions}

    # a missing colon throws the parser off for the rest of the class: still every byte is chunked
    source = PYTHON_SAMPLE.replace("    def size(self):", "    def size(self)").encode()
    parsed = chunk_source("broken.py", source, PYTHON)
    assert parsed.syntax_errors >= 1
    assert_consistent(parsed, source, "broken.py", "#")

    source = b"function ok() { return 1; }\nfunction broken( { if (\n}\nfunction later() { return 2; }\n"
    parsed = chunk_source("broken.js", source, JAVASCRIPT)
    assert parsed.syntax_errors >= 1
    assert_consistent(parsed, source, "broken.js", "//")
    assert chunk_source("ok.js", b"function ok() { return 1; }\n", JAVASCRIPT).syntax_errors == 0


def test_non_utf8_bytes_are_replaced_in_text_but_offsets_stay_bytes() -> None:
    source = (
        b"# caf\xe9 \xff\xfe latin-1 bytes\n"
        b"NAME = 'na\xefve'\n\n\n" + PYTHON_SAMPLE.encode()[PYTHON_SAMPLE.index("def process_all") - 2 :]
    )
    parsed = chunk_source("latin.py", source, PYTHON)
    assert_consistent(parsed, source, "latin.py", "#")
    assert "caf\ufffd" in parsed.chunks[0].text
    pieces = [chunk for chunk in parsed.chunks if chunk.symbol == "process_all"]
    assert pieces[0].start_line == source[: source.index(b"def process_all")].count(b"\n") + 1
    assert source[pieces[0].start_byte :].startswith(b"def process_all")


def test_nul_bytes_and_odd_file_names_give_valid_text() -> None:
    source = b"x = 'a" + b"\0" * 3 + b"b'\n"
    parsed = chunk_source("bad\nname\udcff.py", source, PYTHON)
    (chunk,) = parsed.chunks
    assert "\0" not in chunk.text
    assert chunk.text == "# bad?name\ufffd.py\nx = 'a\ufffd\ufffd\ufffdb'"
    chunk.text.encode("utf-8")  # no lone surrogate


def test_a_line_longer_than_the_cap_is_cut_at_character_boundaries() -> None:
    source = ("BLOB = '" + "é" * 4000 + "'\n" + "x = 1\n").encode()
    parsed = chunk_source("blob.py", source, PYTHON)
    assert_consistent(parsed, source, "blob.py", "#")
    assert len(parsed.chunks) >= 3
    assert all("\ufffd" not in chunk.text for chunk in parsed.chunks)


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    source = ("value = " + "[" * 400 + "1" + "]" * 400 + "\n").encode() * 8
    parsed = chunk_source("deep.py", source, PYTHON)
    assert_consistent(parsed, source, "deep.py", "#")


def test_empty_and_blank_files() -> None:
    for source in (b"", b"\n\n   \n\t\n"):
        parsed = chunk_source("empty.py", source, PYTHON)
        assert parsed.chunks == ()
        assert parsed.syntax_errors == 0


def test_output_is_deterministic() -> None:
    source = JAVASCRIPT_SAMPLE.encode()
    assert chunk_source("a.js", source, JAVASCRIPT) == chunk_source("a.js", source, JAVASCRIPT)


def test_version_names_the_rules_and_the_grammars() -> None:
    assert f"{MAX_CHUNK_BYTES}/{SMALL_DEFINITION_BYTES}/{TINY_CHUNK_BYTES}" in CHUNKER_VERSION
    assert f"r{chunker.CHUNKER_REVISION}," in CHUNKER_VERSION
    for language in (PYTHON, JAVASCRIPT, TYPESCRIPT, GO, RUST):
        assert f"{language.grammar_package}={language.grammar_version}" in CHUNKER_VERSION
        assert language.grammar_version != "unknown"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a/b.py", "python"),
        ("x.js", "javascript"),
        ("x.mjs", "javascript"),
        ("x.cjs", "javascript"),
        ("x.jsx", "javascript"),
        ("x.ts", "typescript"),
        ("X.TSX", "tsx"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("README.md", None),
        ("Makefile", None),
        ("archive.py.bak", None),
    ],
)
def test_language_by_extension(path: str, expected: str | None) -> None:
    language = language_for_path(path)
    assert (language.name if language else None) == expected


def test_python_tags() -> None:
    source = textwrap.dedent("""\
        import os.path, json as j
        from collections import OrderedDict, deque as dq
        from ..pkg.mod import thing
        from . import sibling
        from shapes import *

        class Square(Shape, abc.ABC):
            def area(self):
                return compute(self.side) + self.helper()

        def build():
            return Square()
        """).encode()
    parsed = chunk_source("tags.py", source, PYTHON)
    definitions = {(d.name, d.symbol, d.kind, d.line) for d in parsed.definitions}
    assert definitions == {
        ("Square", "Square", "class", 7),
        ("area", "Square.area", "method", 8),
        ("build", "build", "function", 11),
    }
    references = {(r.name, r.kind, r.line) for r in parsed.references}
    assert references == {
        ("Shape", "class", 7),
        ("ABC", "class", 7),
        ("compute", "call", 9),
        ("helper", "call", 9),
        ("Square", "call", 12),
    }
    imports = [(i.module, i.names, i.line) for i in parsed.imports]
    assert imports == [
        ("os.path", (), 1),
        ("json", (), 1),
        ("collections", ("OrderedDict", "deque"), 2),
        ("..pkg.mod", ("thing",), 3),
        (".", ("sibling",), 4),
        ("shapes", ("*",), 5),
    ]


def test_javascript_tags() -> None:
    source = textwrap.dedent("""\
        import def, { a as b, c } from "./mod.js";
        import * as ns from 'lib';
        export { x } from "./reexport";
        const fs = require("fs");

        class Square extends Shape {
          area() { return compute(this.side) + this.helper(); }
        }

        const build = () => new Square();
        async function load() { return import("./lazy.js"); }
        """).encode()
    parsed = chunk_source("tags.js", source, JAVASCRIPT)
    definitions = {(d.symbol, d.kind, d.line) for d in parsed.definitions}
    assert definitions == {
        ("Square", "class", 6),
        ("Square.area", "method", 7),
        ("build", "function", 10),
        ("load", "function", 11),
    }
    references = {(r.name, r.kind, r.line) for r in parsed.references}
    assert references == {
        ("Shape", "class", 6),
        ("compute", "call", 7),
        ("helper", "call", 7),
        ("Square", "class", 10),
    }
    imports = [(i.module, i.names, i.line) for i in parsed.imports]
    assert imports == [
        ("./mod.js", ("default", "a", "c"), 1),
        ("lib", ("*",), 2),
        ("./reexport", ("x",), 3),
        ("fs", (), 4),
        ("./lazy.js", (), 11),
    ]


def test_go_and_rust_tags() -> None:
    parsed = chunk_source("inventory.go", GO_SAMPLE.encode(), GO)
    assert [(i.module, i.line) for i in parsed.imports] == [("fmt", 5), ("strings", 6)]
    definitions = {(d.symbol, d.kind) for d in parsed.definitions}
    assert {("Inventory", "struct"), ("Inventory.Weigh", "method"), ("ProcessAll", "function")} <= definitions
    assert {"Sprintf", "Weigh", "measure", "Write"} <= {r.name for r in parsed.references if r.kind == "call"}

    parsed = chunk_source("inventory.rs", RUST_SAMPLE.encode(), RUST)
    assert [(i.module, i.names) for i in parsed.imports] == [
        ("std::collections", ("HashMap", "HashSet")),
        ("crate::log::Log", ()),
    ]
    definitions = {(d.symbol, d.kind) for d in parsed.definitions}
    assert {
        ("Inventory", "struct"),
        ("Inventory", "impl"),
        ("Inventory.weigh", "method"),
        ("Inventory.report.describe", "function"),
        ("process_all", "function"),
    } <= definitions
    assert {"format", "describe", "write", "new"} <= {r.name for r in parsed.references}
