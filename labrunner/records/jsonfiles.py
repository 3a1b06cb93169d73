"""The JSON files of a run folder: values made JSON, files written atomically, and files
read back with validation.

Every reader checks a file a field at a time and names the first one that is wrong in a
one-line :class:`RunFileError` (``exercises[0].checks[1].passed: expected true or false, got
a string``); the helpers here (:func:`field_of`, :func:`json_object`, :func:`check_schema`,
...) are what the record types of :mod:`.parts`, :mod:`.results`, :mod:`.runinfo` and
:mod:`.sweep` are read back with.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..base.errors import UsageError
from ..base.names import NAME_PATTERN, RUN_FOLDER_NAMES

#: The version of result.json and run.json this labrunner writes.
SCHEMA_VERSION = 2
#: The schema versions this labrunner reads: version 1 (before a check, claim, figure or
#: table could carry its own fidelity, and an exercise the assignment's points) reads as
#: version 2 with every part on its exercise's fidelity and no points declared.
READABLE_SCHEMAS = (1, 2)


def jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars, tuples, paths and non-finite floats to JSON values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_json = getattr(value, "to_json", None)  # a record with a JSON form of its own
        return jsonable(to_json() if callable(to_json) else dataclasses.asdict(value))
    item = getattr(value, "item", None)  # numpy and torch scalars
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return jsonable(item())
    tolist = getattr(value, "tolist", None)  # small arrays
    if callable(tolist):
        return jsonable(tolist())
    return str(value)


def number(value: Any) -> float | int:
    """A metric value as a plain Python number (raises TypeError otherwise)."""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"a metric must be a number, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- reading back

#: The biggest run.json or result.json read back (a result with large tables is a few MB).
MAX_JSON_BYTES = 64 * 1024 * 1024
#: A lab's folder in a run folder: a lab name, never a path elsewhere, never an entry the
#: run folder holds itself.
RESERVED_FOLDERS = RUN_FOLDER_NAMES
#: One part of a path inside a lab's folder (figures/<name>.png): no '..', no hidden files.
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class RunFileError(UsageError, ValueError):
    """A run.json or result.json that is not what labrunner writes.

    The message is one line naming the file and the field (``exercises[0].checks[1].passed:
    expected true or false, got a string``). Being a UsageError, the command line prints it
    and exits with status 2; being a ValueError, code that treats unreadable files alike
    (a cache entry that fails validation) catches it too.
    """


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message never prints a whole value."""
    if isinstance(value, (dict, list)):
        return f"{type(value).__name__} of {len(value)}"
    text = repr(value) if not isinstance(value, str) or len(value) <= limit else repr(value[:limit])
    return text if len(text) <= limit + 2 else text[:limit] + "…"


def type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "an integer"}
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number" if math.isfinite(value) else f"the number {value}"
    return names.get(type(value), type(value).__name__)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float))


_EXPECTED = {
    str: ("a string", lambda v: isinstance(v, str)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", is_int),
    float: ("a finite number", is_number),
    list: ("a list", lambda v: isinstance(v, list)),
    dict: ("an object", lambda v: isinstance(v, dict)),
}
_MISSING = object()


def where_of(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def json_object(data: Any, where: str) -> dict[str, Any]:
    """``data`` if it is a JSON object, else a RunFileError naming ``where``."""
    if not isinstance(data, dict):
        raise RunFileError(f"{where or 'the file'}: expected an object, got {type_name(data)}")
    return data


def field_of(
    data: dict[str, Any],
    key: str,
    where: str,
    kind: type,
    default: Any = _MISSING,
    *,
    optional: bool = False,
) -> Any:
    """``data[key]`` checked to be of ``kind`` (str, bool, int, float, list, dict); ``default``
    when absent (required when no default); ``optional`` also allows null."""
    if key not in data:
        if default is _MISSING:
            raise RunFileError(f"{where_of(where, key)}: missing")
        return default
    value = data[key]
    if optional and value is None:
        return None
    expected, ok = _EXPECTED[kind]
    if not ok(value):
        raise RunFileError(f"{where_of(where, key)}: expected {expected}, got {type_name(value)}")
    return value


def choice_of(
    data: dict[str, Any], key: str, where: str, choices: Sequence[str], default: Any = _MISSING
) -> str:
    """``data[key]``, a string that is one of ``choices`` (``default`` when absent; required
    when no default)."""
    value = field_of(data, key, where, str, default)
    if value not in choices:
        raise RunFileError(
            f"{where_of(where, key)}: expected one of {', '.join(choices)}, got {short(value)}"
        )
    return value


def check_lab_name(name: Any, where: str) -> str:
    """A lab name as a folder of the run: the lab contract's pattern, nothing else."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in RESERVED_FOLDERS:
        raise RunFileError(f"{where}: invalid lab name {short(name)}")
    return name


def seeds_of(data: dict[str, Any], where: str, default: Any = _MISSING) -> list[int]:
    """``data["seeds"]``: a list of seeds, each an integer >= 0 (``default`` when absent;
    required when there is none)."""
    seeds = field_of(data, "seeds", where, list, default)
    for i, seed in enumerate(seeds):
        if not is_int(seed) or seed < 0:
            raise RunFileError(
                f"{where_of(where_of(where, 'seeds'), i)}: expected a seed >= 0, got {short(seed)}"
            )
    return seeds


def check_relative_path(path: Any, where: str) -> str:
    """A file inside a lab's folder, as a relative POSIX path without '..' or hidden parts."""
    if isinstance(path, str) and 0 < len(path) <= 1000:
        parts = path.split("/")
        if len(parts) <= 8 and all(_PATH_PART.match(p) for p in parts):
            return path
    raise RunFileError(f"{where}: unsafe path {short(path)} (expected a file inside the lab's folder)")


def read_text_file(path: Path, *, max_bytes: int, error: type[UsageError] = UsageError) -> str:
    """The UTF-8 text of ``path``, read with a bound; an ``error`` (one line naming the file)
    when it cannot be read, is larger than ``max_bytes`` or is not UTF-8."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None


def read_json_file(path: Path, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path``; a RunFileError (one line naming the file) when it cannot be
    read, is larger than ``max_bytes``, is not UTF-8 or not JSON."""
    path = Path(path)
    text = read_text_file(path, max_bytes=max_bytes, error=RunFileError)
    try:
        return json.loads(text)
    except RecursionError:
        raise RunFileError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise RunFileError(f"{path}: not valid JSON ({str(exc).splitlines()[0][:200]})") from None


T = TypeVar("T")


def load_record(path: Path, from_json: Callable[[Any], T]) -> T:
    """``from_json`` of the JSON in ``path``; a RunFileError names the file and the field."""
    data = read_json_file(path)
    try:
        return from_json(data)
    except RunFileError as exc:
        raise RunFileError(f"{path}: {exc}") from None


def check_schema(data: dict[str, Any], where: str = "", *, required: bool = True) -> int:
    """The file's schema version, which must be one this labrunner reads
    (:data:`READABLE_SCHEMAS`); a file without one (``required=False``) is version 1."""
    version = field_of(data, "schema", where, int, _MISSING if required else 1)
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"{where_of(where, 'schema')}: version {version} was written by a newer labrunner "
            f"(this one reads version {SCHEMA_VERSION}); upgrade labrunner"
        )
    if version not in READABLE_SCHEMAS:
        raise RunFileError(
            f"{where_of(where, 'schema')}: unknown version {version} "
            f"(expected one of {', '.join(map(str, READABLE_SCHEMAS))})"
        )
    return version


# --------------------------------------------------------------------------- writing


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(jsonable(data), indent=2, ensure_ascii=False) + "\n")
