"""Reading config files safely: a regular file of bounded size, in UTF-8, parsed as YAML
with ``safe_load`` semantics and bounded depth and alias expansion, with the line of each
key, so that every error is one line naming the file, line and column.

A "billion laughs" file (aliases of aliases) is refused while it is composed, before
anything is built; ``1e-3`` reads as a number (YAML 1.1 reads it as a string). Messages
about user input use :func:`short_repr` and :func:`one_line`, never a whole value.
"""

from __future__ import annotations

import functools
import re
import reprlib
from pathlib import Path
from typing import Any

from ..base.errors import UsageError

#: Bounds on what a config file (or a ``--set`` value) may make the loader build.
MAX_CONFIG_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000


_REPR = reprlib.Repr()  # builds a short repr without building the whole one first
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 50, 50, 40


def short_repr(value: Any, limit: int = 60) -> str:
    """A value's repr for a message, cut short: never the whole of a huge value."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"  # repr fails past 4300 digits
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: Any, limit: int = 200) -> str:
    """``str(text)`` on one line (whitespace runs become one space), cut at ``limit``."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: YAML 1.1 reads ``1e-3`` and ``1.0e3`` (no dot, or no sign after the ``e``) as strings.
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _loader_class() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` that refuses documents nested too deeply or whose aliases
        expand to too many values, while composing (before anything is built)."""

        def __init__(self, text: str, name: str) -> None:
            super().__init__(text)
            self.name = name
            self.depth = 0
            self.values = 0
            self.child_heights = [0]
            self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height)

        def _at(self, mark: Any) -> str:
            return f"{self.name}:{mark.line + 1}:{mark.column + 1}"

        def _count(self, values: int, height: int, mark: Any) -> None:
            self.values += values
            if self.values > MAX_YAML_VALUES:
                raise UsageError(
                    f"{self._at(mark)}: more than {MAX_YAML_VALUES:,} values once aliases are "
                    "expanded; a config this large is refused"
                )
            if self.depth + height > MAX_YAML_DEPTH:
                raise UsageError(f"{self._at(mark)}: nested deeper than {MAX_YAML_DEPTH} levels")
            self.child_heights[-1] = max(self.child_heights[-1], height)

        def fetch_flow_collection_start(self, token_class: Any) -> None:
            # refused while scanning: the scanner would read far ahead through "[[[[..."
            if self.flow_level >= MAX_YAML_DEPTH:
                raise UsageError(f"{self._at(self.get_mark())}: nested deeper than {MAX_YAML_DEPTH} levels")
            super().fetch_flow_collection_start(token_class)

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                node = self.anchors.get(event.anchor)
                if node is not None:
                    if id(node) not in self.measured:
                        raise UsageError(
                            f"{self._at(event.start_mark)}: alias *{one_line(event.anchor, 40)} "
                            "refers to a value that contains it"
                        )
                    self._count(*self.measured[id(node)], event.start_mark)
                return super().compose_node(parent, index)
            if self.depth + 1 > MAX_YAML_DEPTH:
                raise UsageError(f"{self._at(event.start_mark)}: nested deeper than {MAX_YAML_DEPTH} levels")
            before = self.values
            self.values += 1
            self.depth += 1
            self.child_heights.append(0)
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
                height = 1 + self.child_heights.pop()
            self.measured[id(node)] = (self.values - before, height)
            self.values = before
            self._count(*self.measured[id(node)], event.start_mark)
            return node

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            try:
                return super().construct_object(node, deep)
            except ValueError as exc:  # a date such as 2024-13-40, an integer of 5000 digits
                raise UsageError(
                    f"{self._at(node.start_mark)}: cannot read this value: {one_line(exc, 80)}"
                ) from None

    BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))
    return BoundedLoader


def parse_yaml(text: str, name: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML ``text`` safely and within bounds; ``name`` (a file, ``--set ...``) starts
    every error. Returns the data and the line of each mapping key path (``labs.x.steps``)."""
    import yaml

    loader = None
    try:
        loader = _loader_class()(text, name)  # checks every character first
        node = loader.get_single_node()
        lines = _key_lines(node, name) if node is not None else {}
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = one_line(exc.problem or exc.context or "invalid YAML")
        raise UsageError(f"malformed YAML in {where}: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise UsageError(
            f"malformed YAML in {name}:{line}:{column}: character #x{exc.character:04x} is not allowed"
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"malformed YAML in {name}: {one_line(exc)}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _key_lines(root: Any, name: str) -> dict[str, int]:
    """The line of each key path under ``root``; a key written twice in one mapping is an error."""
    import yaml

    lines: dict[str, int] = {}
    seen: set[int] = set()

    def walk(node: Any, prefix: str) -> None:
        if id(node) in seen or not isinstance(node, yaml.MappingNode):
            return
        seen.add(id(node))
        first: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            path = f"{prefix}.{key.value}" if prefix else key.value
            line = key.start_mark.line + 1
            if key.value in first:
                raise UsageError(
                    f"{name}:{line}: key {short_repr(path)} is written twice (first on line {first[key.value]})"
                )
            first[key.value] = line
            lines[path] = line
            walk(value, path)

    walk(root, "")
    return lines


def read_config_text(path: Path) -> str:
    """The text of a config file: a regular file of at most ``MAX_CONFIG_BYTES``, in UTF-8."""
    path = Path(path)
    try:
        if not path.is_file():
            if not path.exists():
                raise UsageError(f"config file not found: {path}")
            raise UsageError(f"config file {path} is not a regular file")
        size = path.stat().st_size
        if size <= MAX_CONFIG_BYTES:
            with path.open("rb") as stream:
                data = stream.read(MAX_CONFIG_BYTES + 1)
            size = len(data)
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    if size > MAX_CONFIG_BYTES:
        raise UsageError(
            f"config file {path} is too large ({size:,} bytes; the limit is {MAX_CONFIG_BYTES:,})"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise UsageError(
            f"{path}:{line}:{column}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8"
        ) from None


def load_yaml_file(path: Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file safely and within bounds; errors name the file and line.
    Returns the data and the line of each key path."""
    return parse_yaml(read_config_text(path), str(path))
