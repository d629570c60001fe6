"""YAML in, plain data out, with the file, line and column of every key and value kept.

PyYAML alone silently keeps the last of two duplicate keys, expands aliases without bound and
turns every mistake into a traceback. This loader composes the node tree with libyaml's C parser
(the pure-Python parser dominates octoDNS's own run time) and builds the data itself, so that it
can refuse duplicates, bound alias expansion and nesting, and report each problem at its place.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import InvalidInput, Origin, Problem

try:  # libyaml is an optional part of PyYAML wheels; fall back to the pure parser.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the PyYAML build
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 256 * 1024
MAX_NODES = 20_000  # nodes built after alias expansion: stops "billion laughs"
MAX_DEPTH = 32

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """A loaded file: its data and where each part of it was written.

    ``where(path)`` gives the origin of the value at ``path`` (keys and list indexes from the
    root); ``where_key(path)`` the origin of the mapping key that introduced it.
    """

    file: str
    data: Any
    values: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    keys: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    # What was written for each unquoted scalar that YAML did not read as a string (off, yes,
    # 3600, ~): messages quote the user's own word, not Python's False.
    words: dict[PathKey, str] = field(default_factory=dict)

    def where(self, path: PathKey) -> Origin:
        while path and path not in self.values:
            path = path[:-1]
        line, col = self.values.get(path, (1, 1))
        return Origin(self.file, line, col)

    def where_key(self, path: PathKey) -> Origin:
        if path in self.keys:
            line, col = self.keys[path]
            return Origin(self.file, line, col)
        return self.where(path)


def _problem(code: str, message: str, origin: Origin, hint: str = "") -> InvalidInput:
    return InvalidInput([Problem(code, message, origin, hint)])


def _decode(raw: bytes, file: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise _problem(
            "yaml.encoding",
            f"byte 0x{raw[exc.start]:02x} is not UTF-8",
            Origin(file, line, column),
            "save the file as UTF-8",
        ) from None
    return text.removeprefix("\ufeff")


def read_text(path: Path, file: str, root: Path | None = None) -> str:
    """The file's text, refusing what no declaration can be: not a regular file (a FIFO, a
    device, a directory), a link leading out of ``root`` (the repository), too large, not
    UTF-8, empty. The size is judged on the open file, and no more than the limit is read, so
    a file growing under us (``/dev/zero``) costs nothing."""
    no_follow = 0
    if root is not None:
        # The common case, cheaply (10,000 files): not a link, in a directory inside root;
        # opened without following a link, so one swapped in since fails to open.
        try:
            plain = not stat.S_ISLNK(os.lstat(path).st_mode)
        except OSError:
            plain = False
        if plain and _inside(str(path.parent), str(root)):
            no_follow = getattr(os, "O_NOFOLLOW", 0)
        else:
            try:
                real = path.resolve(strict=True)
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
                raise _problem("file.unreadable", f"cannot follow {file}: {exc}",
                               Origin(file), "make it a plain file") from None
            if not real.is_relative_to(root.resolve()):
                raise _problem("file.outside", f"{file} is a link to {real}, outside the "
                               "repository", Origin(file),
                               "put the declaration itself in zones/")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | no_follow |
                     getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _problem("file.unreadable", exc.strerror or str(exc), Origin(file)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _problem("file.not-regular", f"{file} is not a regular file",
                           Origin(file), "a declaration is a plain file")
        if info.st_size > MAX_BYTES:
            raise _problem(
                "yaml.too-large",
                f"file is {info.st_size} bytes, more than the {MAX_BYTES} a declaration may "
                "have", Origin(file), "split it or remove what is not a declaration")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_BYTES:
            raise _problem("yaml.too-large", f"file holds more than the {MAX_BYTES} bytes a "
                           "declaration may have", Origin(file), "split it")
        raw = b"".join(chunks)
    except OSError as exc:
        raise _problem("file.unreadable", exc.strerror or str(exc), Origin(file)) from None
    finally:
        os.close(fd)
    text = _decode(raw, file)
    if not text.strip() or all(
        not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()
    ):
        raise _problem("yaml.empty", "file is empty", Origin(file), "write the declaration")
    return text


@lru_cache(maxsize=64)
def _inside(directory: str, root: str) -> bool:
    """Whether ``directory`` (links resolved) lies in ``root`` (links resolved)."""
    real, top = os.path.realpath(directory), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def load(path: Path, file: str | None = None, root: Path | None = None) -> Document:
    """Load one YAML file holding one mapping. Raises :class:`InvalidInput` with one problem.
    ``root``: the file must be in it, links followed (the repository, for ``zones/``)."""
    name = file if file is not None else str(path)
    return parse(read_text(path, name, root), name)


def parse(text: str, file: str) -> Document:
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        from provisioner.yamlsyntax import explain

        said = explain(text, exc)
        raise _problem("yaml.syntax", said.message, Origin(file, said.line, said.column),
                       said.hint) from None
    except yaml.YAMLError as exc:
        raise _problem("yaml.syntax", str(exc).splitlines()[0], Origin(file, 1, 1)) from None
    if node is None:
        raise _problem(
            "yaml.empty", "file holds no document", Origin(file), "write the declaration"
        )
    builder = _Builder(file)
    data = builder.build(node, (), 0)
    if not isinstance(data, dict):
        raise _problem(
            "yaml.not-mapping",
            f"the document is a {_kind(node)}, not a mapping",
            Origin(file, node.start_mark.line + 1, node.start_mark.column + 1),
            "write 'key: value' lines at the top level",
        )
    return Document(file, data, builder.values, builder.keys, builder.words)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "scalar"


_SCALARS = yaml.constructor.SafeConstructor()
_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
# The common scalar tags, converted without the constructor's generic dispatch (a third of the
# loading time at thousands of files). Anything else (floats, timestamps) takes the slow path.
_PLAIN: dict[str, Any] = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:bool": lambda v: _BOOLS[v.lower()],
    "tag:yaml.org,2002:null": lambda v: None,
}


class _Builder:
    """Turns a node tree into dicts, lists and scalars, recording positions on the way."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values: dict[PathKey, tuple[int, int]] = {}
        self.keys: dict[PathKey, tuple[int, int]] = {}
        self.words: dict[PathKey, str] = {}
        self.count = 0

    def _fail(self, code: str, message: str, node: yaml.Node, hint: str = "") -> InvalidInput:
        mark = node.start_mark
        return _problem(code, message, Origin(self.file, mark.line + 1, mark.column + 1), hint)

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            # The node is shared by every alias of it: point at the top-level entry being built.
            line, column = self.keys.get(path[:1], (1, 1))
            raise _problem(
                "yaml.too-many-nodes",
                f"more than {MAX_NODES} values once aliases are expanded",
                Origin(self.file, line, column),
                "remove the aliases (*name) that repeat large parts",
            )
        if depth > MAX_DEPTH:
            raise self._fail(
                "yaml.too-deep", f"nested more than {MAX_DEPTH} levels", node, "flatten it"
            )
        mark = node.start_mark
        self.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag != "tag:yaml.org,2002:str":
            self.words[path] = str(node.value)
        fast = _PLAIN.get(node.tag)
        if fast is not None:
            return fast(node.value)
        try:
            value = _SCALARS.construct_object(node)
        except yaml.YAMLError as exc:
            raise self._fail("yaml.value", str(exc).splitlines()[0], node) from None
        if isinstance(value, (bytes, bytearray)):
            raise self._fail("yaml.value", "binary values are not allowed", node)
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            return str(node.value)  # timestamps and the like: keep what was written
        return value

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self._fail("yaml.key", "a key must be a plain name", key_node)
            key = str(key_node.value)
            kpos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key == "<<":
                raise self._fail(
                    "yaml.merge-key",
                    "merge keys (<<) are not supported",
                    key_node,
                    "write the keys out",
                )
            if key in first:
                raise self._fail(
                    "yaml.duplicate-key",
                    f"duplicate key {key!r} (first at line {first[key][0]})",
                    key_node,
                    "keep one of them",
                )
            first[key] = kpos
            self.keys[(*path, key)] = kpos
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def walk_paths(data: Any, path: PathKey = ()) -> Iterator[PathKey]:
    """Every path in ``data`` (for tests and tools)."""
    yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from walk_paths(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from walk_paths(value, (*path, i))
