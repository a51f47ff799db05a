"""Strict YAML for configuration files.

Configuration is data, so the loader refuses what only makes sense in programs or
attacks: aliases (the "billion laughs" expansion bomb), duplicate keys (the last one
would silently win) and files over a size bound.  Timestamps stay strings so every
document is plain JSON data (for JSON Schema and for policy input).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from .errors import MlopsError

MAX_BYTES = 1 << 20
MAX_DEPTH = 64  # nesting of mappings and sequences a configuration file may have


class YamlError(MlopsError):
    """A file that is not acceptable YAML; where says the line and column when known."""

    def __init__(self, source: str, where: str, problem: str, expected: str = ""):
        self.source, self.where, self.problem, self.expected = source, where, problem, expected
        text = f"{source}: " + (f"{where}: " if where else "") + problem
        super().__init__(text + (f" (expected {expected})" if expected else ""))


class _Checks:
    """What every strict loader refuses while it builds the data: duplicate keys, YAML 1.1 booleans."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
            if value_node.tag == _AMBIGUOUS:  # name the field, not only the word
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key}: {value_node.value}{_AMBIGUOUS_WHY}", value_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _StrictLoader(_Checks, yaml.SafeLoader):
    """The pure-Python strict loader: it refuses aliases and deep nesting as it composes, so its
    errors say exactly where (the fast loader below defers to it for every error)."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the PyYAML stubs
            raise yaml.constructor.ConstructorError(
                None, None, "YAML alias (*name): not allowed in configuration files", event.start_mark
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.constructor.ConstructorError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_CBase: Any = getattr(yaml, "CSafeLoader", None)


class _Refused(Exception):
    """The fast loader met something the strict one must explain: an alias, deep nesting."""


def _plain_tree(node: Any) -> None:
    """Refuse a composed tree with a node reached twice (an alias) or nested too deep."""
    seen: set[int] = set()
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if id(current) in seen or depth > MAX_DEPTH:
            raise _Refused
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            stack.extend((part, depth + 1) for pair in current.value for part in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((part, depth + 1) for part in current.value)


if _CBase is not None:

    class _FastLoader(_Checks, _CBase):  # type: ignore[misc]
        """libyaml's parser (PyYAML's C loader) with the same resolvers and checks; aliases and
        depth are checked on the composed tree before anything is built from it."""

        def construct_document(self, node: Any) -> Any:
            _plain_tree(node)
            return super().construct_document(node)


# Timestamps stay strings: the documents must be plain JSON data. Booleans are YAML 1.2's
# (true/false): the words YAML 1.1 also reads as booleans (yes, no, on, off) are refused in
# configuration, since YAML 1.2 tools (conftest, Argo CD, Go) read them as strings and would
# judge another value than the validator saw.
_BOOL = "tag:yaml.org,2002:bool"
_AMBIGUOUS_WHY = " is a YAML 1.1 boolean, which YAML 1.2 tools (conftest, Argo CD) read as a string"
_AMBIGUOUS = "tag:mlops-gitops,2026:yaml11-bool"
_YAML12_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_YAML11_ONLY = re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$")
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:timestamp", _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_BOOL, _YAML12_BOOL, list("tTfF"))
_StrictLoader.add_implicit_resolver(_AMBIGUOUS, _YAML11_ONLY, list("yYnNoO"))


def _ambiguous(loader: Any, node: Any) -> Any:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"{node.value}{_AMBIGUOUS_WHY}",
        node.start_mark,
    )


_StrictLoader.add_constructor(_AMBIGUOUS, _ambiguous)
if _CBase is not None:
    _FastLoader.yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers
    _FastLoader.add_constructor(_AMBIGUOUS, _ambiguous)


class _Yaml12Loader(_StrictLoader):
    """YAML 1.2 booleans (only true/false), as Go's YAML and conftest read them: `on:` stays a key."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _AMBIGUOUS]
    for first, resolvers in _StrictLoader.yaml_implicit_resolvers.items()
}


def loads_data(text: str, source: str = "<string>") -> Any:
    """Strict YAML with YAML 1.2 booleans: policy input that matches what conftest sees."""
    return _parse(text, source, _Yaml12Loader)


def loads_data_all(text: str, source: str = "<string>") -> list[Any]:
    """Every document of a multi-document YAML stream (`---`), as loads_data reads each."""
    documents: list[Any] = _parse(text, source, _Yaml12Loader, every=True)
    return documents


_EXPECTED = {
    "yaml": "plain data: write the value out instead of an alias",
    "duplicate": "each key once in a mapping",
    "a": "true or false (quote it for a string)",
    "nested": f"at most {MAX_DEPTH} levels of nesting",
}


def loads(text: str, source: str = "<string>") -> Any:
    """Strict YAML for configuration: libyaml's speed when it is there; every refusal (and any
    file it cannot read) is explained by the pure-Python strict loader, line and column."""
    if _CBase is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)
        except (yaml.YAMLError, _Refused, RecursionError):
            pass
    return _parse(text, source, _StrictLoader)


def _parse(text: str, source: str, loader: type[_StrictLoader], every: bool = False) -> Any:
    try:
        if every:
            return list(yaml.load_all(text, Loader=loader))
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(exc.problem or exc.context)
        key = "a" if _AMBIGUOUS_WHY in problem else problem.split(" ", 1)[0].lower()
        expected = _EXPECTED.get(key, "valid YAML")
        raise YamlError(source, where, problem, expected) from None
    except RecursionError:
        raise YamlError(source, "", "nested too deep", f"at most {MAX_DEPTH} levels of nesting") from None
    except yaml.YAMLError as exc:
        raise YamlError(source, "", f"YAML: {exc}", "valid YAML") from None


def load(path: Path, display: str | None = None) -> Any:
    name = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YamlError(name, "", f"file is {size} bytes", f"at most {MAX_BYTES}")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise YamlError(name, "", "not UTF-8 text", "a UTF-8 YAML file") from None
    except OSError as exc:
        raise YamlError(name, "", f"cannot read: {exc.strerror}") from None
    return loads(text, name)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def entries(text: str, indent: int = 0) -> dict[str, tuple[int, int]]:
    """{key: (first line, end line)} of each mapping entry at `indent` spaces: the key's line and
    the lines under it (more indented, a sequence's items at the key's own indentation, blank
    lines between them). A comment at that indentation ends a block: it belongs to the entry
    after it."""
    lines = text.splitlines(keepends=True)
    key_line = re.compile("^" + " " * indent + r"([A-Za-z0-9_][\w.-]*):(\s|$)")
    found: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(lines):
        match = key_line.match(lines[i])
        if not match:
            i += 1
            continue
        end = i + 1
        while end < len(lines):
            line = lines[end]
            depth = len(line) - len(line.lstrip(" "))
            # more indented, or a sequence item at the key's own indentation (YAML allows it)
            inner = line.strip() == "" or depth > indent or line[depth:].startswith(("- ", "-\n"))
            if not inner:
                break
            end += 1
        while end > i + 1 and lines[end - 1].strip() == "":
            end -= 1  # trailing blank lines belong between entries
        found[match.group(1)] = (i, end)
        i = end
    return found


def flow_entry(key: str, value: Any) -> str | None:
    """A top-level `key: value` line in flow style, for replace_entry (None when value is None:
    the key goes)."""
    if value is None:
        return None
    rendered = yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=1 << 20)
    return rendered.strip()[1:-1] + "\n"


def replace_entry(base: str, key: str, source: str | None) -> str:
    """`base` with its top-level `key` entry replaced by `source`'s, text for text (removed when
    `source` has none, added at the end when `base` has none): settings move between files without
    losing the comments within them or around the rest."""
    lines = base.splitlines(keepends=True)
    where = entries(base).get(key)
    theirs = entries(source).get(key) if source is not None else None
    taken = source.splitlines(keepends=True)[theirs[0] : theirs[1]] if source and theirs else []
    if taken and not taken[-1].endswith("\n"):
        taken[-1] += "\n"
    if where is None:
        return base if not taken else base + "".join(taken)
    return "".join(lines[: where[0]] + taken + lines[where[1] :])
