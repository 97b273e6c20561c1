"""Reading knowledge files: strict JSON, safe YAML, and what PostgreSQL's jsonb can store.

Every way a file can be wrong is an :class:`InvalidDocument` whose message says where and why (a
line and column for a syntax error, a JSON path for a value), never an exception that would stop a
run or reach the database: a NUL character or a lone surrogate in a string, a number that is not
finite, a duplicate key (JSON and YAML would silently keep the last one), a YAML key that is not a
string, a YAML alias that expands forever. What passes is plain JSON (dicts, lists, strings, ints,
finite floats, booleans, None), which :func:`to_json` writes for jsonb.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ..ingest.files import (
    NOT_REGULAR,
    TOO_LARGE,
    UNREADABLE,
    VANISHED,
    FileContent,
    Skip,
    read_file,
)

MAX_FILE_BYTES = 16 * 1024 * 1024
# values in one document once YAML aliases are expanded: a "billion laughs" file stops here
MAX_VALUES = 1_000_000
_REASON_CHARS = 400  # a schema error quotes the offending value: keep the message readable

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InvalidDocument(Exception):
    """The file cannot be loaded; str() says why, for the DBA who will fix it."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A file (or an item of one) left out of a run, and why. A path that is not UTF-8 (a file name's
    undecodable bytes) is kept printable, backslash-escaped: it goes into messages and the database."""

    path: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", printable(self.path))

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def printable(path: str) -> str:
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def name_problem(path: str) -> Problem | None:
    """A file whose name is not UTF-8 cannot be recorded (its path is a text column): it is left out."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return Problem(path, "its name is not UTF-8: not loaded")
    return None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte order mark is tolerated, and dropped
    except UnicodeDecodeError as error:
        raise InvalidDocument(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise InvalidDocument(f"duplicate key {key!r} in an object")
        mapping[key] = value
    return mapping


def _no_constant(name: str) -> Any:
    raise InvalidDocument(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise InvalidDocument(f"the number {text} is out of range")
    return number


def parse_json(data: bytes) -> Any:
    """The document of a JSON file, checked by :func:`plain`."""
    return parse_json_text(data)[0]


def parse_json_text(data: bytes) -> tuple[Any, str]:
    """The document of a JSON file, and its text: jsonb input as it is, once the document passed."""
    text = _decode(data)
    try:
        value = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite_float
        )
    except json.JSONDecodeError as error:
        raise InvalidDocument(
            f"malformed JSON: line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise InvalidDocument("malformed JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise InvalidDocument(f"malformed JSON: {error}") from None
    # json.loads refuses raw control characters in strings, and the numbers are finite: only a \u
    # escape can spell what jsonb refuses (\u0000, a lone surrogate), so without one nothing is left
    # to check
    return (plain(value) if "\\u" in text else value), text


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader (libyaml's parser where installed) that refuses a mapping with a key twice
    (keys a merge ``<<`` brings in may be overridden, as YAML intends)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: the base constructor says so
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


def parse_yaml(data: bytes) -> Any:
    """The document of a YAML file (one document; safe tags only), checked by :func:`plain`: dates and
    times become ISO 8601 strings."""
    text = _decode(data)
    try:
        documents = list(yaml.load_all(text, Loader=_StrictLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = error.problem or error.context or "invalid"
        raise InvalidDocument(f"malformed YAML: {where}{problem}") from None
    except yaml.YAMLError as error:
        raise InvalidDocument(f"malformed YAML: {error}") from None
    except RecursionError:
        raise InvalidDocument("malformed YAML: nested too deeply") from None
    if not documents:
        raise InvalidDocument("empty: no YAML document")
    if len(documents) > 1:
        raise InvalidDocument(f"holds {len(documents)} YAML documents; a file is one document")
    return plain(documents[0])


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if _IDENTIFIER.match(key) else f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def _check_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidDocument(f"at {where}: a NUL character (\\u0000), which PostgreSQL's jsonb cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidDocument(
            f"at {where}: a lone surrogate \\u{ord(text[error.start]):04x}, which is not a character"
        ) from None


def plain(value: Any) -> Any:
    """``value`` as plain JSON that jsonb stores unchanged, or :class:`InvalidDocument` naming the first
    value that cannot be (by its JSON path, ``$`` the document)."""
    count = 0
    active: set[int] = set()  # containers on the way down: a YAML alias of an ancestor is a cycle

    def convert(item: Any, where: str) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise InvalidDocument(f"over {MAX_VALUES:,} values (with YAML aliases expanded)")
        if item is None or isinstance(item, bool | int):
            return item
        if isinstance(item, str):
            _check_string(item, where)
            return item
        if isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidDocument(f"at {where}: {item} is not a finite number")
            return item
        if isinstance(item, datetime.date):  # a datetime too
            return item.isoformat()
        if isinstance(item, dict | list):
            if id(item) in active:
                raise InvalidDocument(f"at {where}: a YAML alias that contains itself")
            active.add(id(item))
            try:
                if isinstance(item, list):
                    return [convert(element, _path(where, i)) for i, element in enumerate(item)]
                out = {}
                for key, element in item.items():
                    if not isinstance(key, str):
                        raise InvalidDocument(
                            f"at {where}: the key {key!r} is of type {type(key).__name__}, "
                            "not a string (quote it)"
                        )
                    _check_string(key, where)
                    out[key] = convert(element, _path(where, key))
                return out
            finally:
                active.discard(id(item))
        raise InvalidDocument(
            f"at {where}: a value of type {type(item).__name__}, which JSON has no type for"
        )

    try:
        return convert(value, "$")
    except RecursionError:
        raise InvalidDocument("nested too deeply") from None


class ListedReader:
    """Reads the files :func:`pg_autopilot.ingest.files.list_files` listed under ``root`` (one run's), without
    resolving each whole path: a file is opened without following a final symlink, its directory checked
    once to lie inside the root, and it must be a regular file of at most ``size_cap`` bytes. A symlink
    (which the listing allows when it stays inside the root) takes ``read_file``'s careful path."""

    def __init__(self, root: str, size_cap: int = MAX_FILE_BYTES):
        self.root = os.path.realpath(root)
        self.size_cap = size_cap
        self._inside: dict[str, bool] = {}

    def read(self, relative: str) -> FileContent | Skip:
        directory = os.path.dirname(relative)
        inside = self._inside.get(directory)
        if inside is None:
            real = os.path.realpath(os.path.join(self.root, directory))
            inside = self._inside[directory] = real == self.root or real.startswith(self.root + os.sep)
        if not inside:
            return read_file(self.root, relative, self.size_cap)  # it says why
        try:
            descriptor = os.open(
                os.path.join(self.root, relative), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
            )
        except FileNotFoundError:
            return Skip(relative, VANISHED)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return read_file(self.root, relative, self.size_cap)
            return Skip(relative, UNREADABLE, error.strerror or str(error))
        with os.fdopen(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode):
                return Skip(relative, NOT_REGULAR, f"mode {stat.filemode(status.st_mode)}")
            if status.st_size > self.size_cap:
                return Skip(relative, TOO_LARGE, f"{status.st_size} bytes, the cap is {self.size_cap}")
            # a buffer of the file's size, not of the cap (16 MiB per read would dominate the run);
            # a file that grew since fstat is read on, up to one byte past the cap
            data = handle.read(status.st_size + 1)
            if len(data) > status.st_size:
                data += handle.read(self.size_cap + 1 - len(data))
        if len(data) > self.size_cap:
            return Skip(relative, TOO_LARGE, f"over {self.size_cap} bytes, the cap")
        return FileContent(relative, data, hashlib.sha256(data).hexdigest())


def to_json(document: Any) -> str:
    """The jsonb input of a checked document: compact, non-ASCII kept."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def template_schema() -> dict[str, Any]:
    """The JSON Schema every template file must match (shipped in the package: template.schema.json)."""
    return json.loads(resources.files(__package__).joinpath("template.schema.json").read_text("utf-8"))


@cache
def _template_validator() -> Any:
    from jsonschema import Draft202012Validator  # only where templates are read

    return Draft202012Validator(template_schema())


def schema_problem(document: Any) -> str | None:
    """None when ``document`` matches the template schema, else the most relevant violation."""
    from jsonschema.exceptions import best_match

    error = best_match(_template_validator().iter_errors(document))
    if error is None:
        return None
    where = f"at {error.json_path}: " if error.path else ""
    message = error.message
    if len(message) > _REASON_CHARS:
        message = message[: _REASON_CHARS - 1] + "…"
    return f"does not match the template schema: {where}{message}"
