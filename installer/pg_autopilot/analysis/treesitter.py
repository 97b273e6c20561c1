"""The tree-sitter analyzers of registry-sync, run as a program of their own so that a grammar that
crashes or a file that makes a parse run away is stopped by the analyzer timeout, never the runner:

    python -P -m pg_autopilot.analysis.treesitter {complexity|queries} --root ROOT
        [--max-file-bytes N] [--threshold N]   < NUL-separated paths (relative to ROOT)

It prints one JSON document: ``files`` (the files read: path -> [functions, complexity total,
complexity max] for ``complexity``, path -> null for ``queries``), ``findings`` ([path, rule,
count] triples) and ``skipped`` (reason -> files not read: too large, binary, unreadable, ...).

**complexity**: the cyclomatic complexity of each function, method and closure (1 + its decision
points: ``if``/``elif``, loops, ``except``/``catch``, conditional expressions, ``case``/match arms,
each ``and``/``or``/``&&``/``||``/``??``, comprehension ``for``/``if``), a decision point counting
for its innermost enclosing function. A function above ``--threshold`` is one finding of rule
``cyclomatic``.

**queries**: tree-sitter pattern queries, one finding per match; the rules, per language:

========== ==================================================================================
python     bare-except (``except:``), mutable-default (a list, dict or set as a parameter
           default), print-call, star-import, todo-comment (TODO, FIXME, XXX)
javascript console-call, debugger-statement, loose-equality (``==``/``!=``), todo-comment
typescript the same as javascript (also tsx)
go         panic-call, todo-comment
rust       unwrap-call (``.unwrap()``/``.expect()``), unsafe-block, todo-macro (``todo!``,
           ``unimplemented!``), todo-comment
========== ==================================================================================
"""

from __future__ import annotations

import argparse
import functools
import importlib.metadata
import json
import sys
from collections import Counter
from collections.abc import Iterable

import tree_sitter

from ..ingest.files import Skip, read_file
from ..ingest.languages import GO, JAVASCRIPT, PYTHON, RUST, TSX, TYPESCRIPT, Language, language_for_path

# Bumped when a rule or the complexity count changes: a snapshot is compared only with one of the
# same version (the change would otherwise read as findings fixed or introduced).
RULES_VERSION = "1"

_JS_COMPLEXITY = """
[(function_declaration) (function_expression) (arrow_function) (method_definition)
 (generator_function_declaration) (generator_function)] @function
[(if_statement) (for_statement) (for_in_statement) (while_statement) (do_statement) (catch_clause)
 (ternary_expression) (switch_case)] @decision
(binary_expression operator: ["&&" "||" "??"]) @decision
"""

COMPLEXITY_QUERIES: dict[str, str] = {
    PYTHON.name: """
[(function_definition)] @function
[(if_statement) (elif_clause) (for_statement) (while_statement) (except_clause)
 (conditional_expression) (boolean_operator) (for_in_clause) (if_clause) (case_clause)] @decision
""",
    JAVASCRIPT.name: _JS_COMPLEXITY,
    TYPESCRIPT.name: _JS_COMPLEXITY,
    TSX.name: _JS_COMPLEXITY,
    GO.name: """
[(function_declaration) (method_declaration) (func_literal)] @function
[(if_statement) (for_statement) (expression_case) (type_case) (communication_case)] @decision
(binary_expression operator: ["&&" "||"]) @decision
""",
    RUST.name: """
[(function_item) (closure_expression)] @function
[(if_expression) (while_expression) (for_expression) (match_arm)] @decision
(binary_expression operator: ["&&" "||"]) @decision
""",
}

_TODO = r'"\\b(TODO|FIXME|XXX)\\b"'

_JS_RULES = f"""
(call_expression function: (member_expression object: (identifier) @_object)
  (#eq? @_object "console")) @console-call
(debugger_statement) @debugger-statement
(binary_expression operator: ["==" "!="]) @loose-equality
((comment) @todo-comment (#match? @todo-comment {_TODO}))
"""

PATTERN_QUERIES: dict[str, str] = {
    PYTHON.name: f"""
(except_clause !value) @bare-except
(default_parameter value: [(list) (dictionary) (set)]) @mutable-default
(typed_default_parameter value: [(list) (dictionary) (set)]) @mutable-default
((call function: (identifier) @_function) @print-call (#eq? @_function "print"))
(import_from_statement (wildcard_import)) @star-import
((comment) @todo-comment (#match? @todo-comment {_TODO}))
""",
    JAVASCRIPT.name: _JS_RULES,
    TYPESCRIPT.name: _JS_RULES,
    TSX.name: _JS_RULES,
    GO.name: f"""
((call_expression function: (identifier) @_function) @panic-call (#eq? @_function "panic"))
((comment) @todo-comment (#match? @todo-comment {_TODO}))
""",
    RUST.name: f"""
((call_expression function: (field_expression field: (field_identifier) @_method)) @unwrap-call
  (#any-of? @_method "unwrap" "expect"))
(unsafe_block) @unsafe-block
((macro_invocation macro: (identifier) @_macro) @todo-macro (#any-of? @_macro "todo" "unimplemented"))
([(line_comment) (block_comment)] @todo-comment (#match? @todo-comment {_TODO}))
""",
}

KINDS = ("complexity", "queries")
SUFFIXES = frozenset(
    extension
    for language in (PYTHON, JAVASCRIPT, TYPESCRIPT, TSX, GO, RUST)
    for extension in language.extensions
)


def version(kind: str, threshold: int) -> str:
    """What a snapshot of this analyzer is comparable on: the rules, tree-sitter, the threshold."""
    try:
        core = importlib.metadata.version("tree-sitter")
    except importlib.metadata.PackageNotFoundError:
        core = "unknown"
    text = f"rules {RULES_VERSION}; tree-sitter {core}"
    return f"{text}; threshold {threshold}" if kind == "complexity" else text


@functools.cache
def _query(kind: str, language: Language) -> tree_sitter.Query:
    source = (COMPLEXITY_QUERIES if kind == "complexity" else PATTERN_QUERIES)[language.name]
    return tree_sitter.Query(language.grammar, source)


def cyclomatic(functions: list[tuple[int, int]], decisions: Iterable[int]) -> list[int]:
    """The complexity of each function (start, end byte): 1 + the decision points (start bytes)
    whose innermost enclosing function it is. ``functions`` may nest; decisions outside every
    function count for none."""
    order = sorted(range(len(functions)), key=lambda i: (functions[i][0], -functions[i][1]))
    counts = [1] * len(functions)
    stack: list[int] = []
    next_function = 0
    for position in sorted(decisions):
        while next_function < len(order) and functions[order[next_function]][0] <= position:
            opening = order[next_function]
            while stack and functions[stack[-1]][1] <= functions[opening][0]:
                stack.pop()
            stack.append(opening)
            next_function += 1
        while stack and functions[stack[-1]][1] <= position:
            stack.pop()
        if stack:
            counts[stack[-1]] += 1
    return counts


def analyze(
    kind: str, root: str, paths: Iterable[str], max_file_bytes: int, threshold: int
) -> dict[str, object]:
    """The analyzer's JSON document for ``paths`` (see the module's docstring)."""
    files: dict[str, object] = {}
    findings: list[list[object]] = []
    skipped: Counter[str] = Counter()
    parsers: dict[str, tree_sitter.Parser] = {}
    for path in paths:
        language = language_for_path(path)
        if language is None:
            skipped["unknown language"] += 1
            continue
        content = read_file(root, path, max_file_bytes)
        if isinstance(content, Skip):
            skipped[content.reason] += 1
            continue
        parser = parsers.get(language.name) or parsers.setdefault(language.name, language.parser())
        tree = parser.parse(content.data)
        captures = tree_sitter.QueryCursor(_query(kind, language)).captures(tree.root_node)
        if kind == "complexity":
            functions = [(node.start_byte, node.end_byte) for node in captures.get("function", ())]
            counts = cyclomatic(functions, (node.start_byte for node in captures.get("decision", ())))
            files[path] = [len(counts), sum(counts), max(counts, default=0)]
            over = sum(1 for count in counts if count > threshold)
            if over:
                findings.append([path, "cyclomatic", over])
        else:
            files[path] = None
            for rule, nodes in sorted(captures.items()):
                if not rule.startswith("_") and nodes:
                    findings.append([path, rule, len(nodes)])
    return {"files": files, "findings": findings, "skipped": dict(skipped)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pg_autopilot.analysis.treesitter")
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("--root", required=True)
    parser.add_argument("--max-file-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--threshold", type=int, default=10)
    arguments = parser.parse_args(argv)
    data = sys.stdin.buffer.read()
    paths = [item.decode("utf-8", "surrogateescape") for item in data.split(b"\0") if item]
    document = analyze(arguments.kind, arguments.root, paths, arguments.max_file_bytes, arguments.threshold)
    sys.stdout.write(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
