"""YAML loading that remembers where every value came from, so errors can name FILE:LINE:COL.

Aliases are counted as what they expand to while the document is composed, and a document
that expands past `MAX_NODES` values or nests deeper than `MAX_DEPTH` is refused: an alias
bomb (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) is a few lines that expand exponentially."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

MAX_NODES = 100_000  # values after alias expansion; a large scenario has a few hundred
MAX_DEPTH = 64  # mappings and lists within each other


class DocumentTooLarge(yaml.MarkedYAMLError):
    """The document expands past MAX_NODES or nests past MAX_DEPTH (problem_mark: where)."""


class _CountingLoader(yaml.SafeLoader):
    """Composes as SafeLoader does, keeping the expanded size of every node: an alias
    counts as the whole value it refers to, so the total is what construction would build."""

    def __init__(self, text: str):
        super().__init__(text)
        self._sizes: dict[int, int] = {}  # id(node) -> values it expands to
        self._total = 0
        self._depth = 0

    def _refuse(self, problem: str) -> DocumentTooLarge:
        return DocumentTooLarge(problem=problem, problem_mark=self.peek_event().start_mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            target = self.anchors.get(anchor)
            if target is not None and id(target) not in self._sizes:
                raise self._refuse(f"alias *{anchor} refers to a value that contains it")
            size = self._sizes.get(id(target), 0) if target is not None else 0
            self._add(size)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._refuse(f"values are nested more than {MAX_DEPTH} levels deep")
        before = self._total
        self._add(1)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._sizes[id(node)] = self._total - before
        return node

    def _add(self, n: int) -> None:
        self._total += n
        if self._total > MAX_NODES:
            raise self._refuse(f"the document expands to more than {MAX_NODES:,} values "
                               "(through aliases or sheer size)")


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlDocument:
    """Parsed data plus the node tree it came from."""

    def __init__(self, text: str):
        loader = _CountingLoader(text)
        try:
            self.root = loader.get_single_node()
        finally:
            loader.dispose()
        self.data: Any = (
            yaml.SafeLoader(text).construct_document(self.root) if self.root is not None else None
        )

    def position(self, loc: tuple[str | int, ...]) -> Position:
        """Where the value at `loc` starts; for a missing key, where its parent mapping starts."""
        node = self.root
        if node is None:
            return Position(1, 1)
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return Position(node.start_mark.line + 1, node.start_mark.column + 1)

    def key_position(self, loc: tuple[str | int, ...]) -> Position:
        """Where the key at the end of `loc` is written (for unknown or duplicate keys)."""
        parent = self.root
        for part in loc[:-1]:
            child = _child(parent, part) if parent is not None else None
            if child is None:
                return self.position(loc[:-1])
            parent = child
        if isinstance(parent, yaml.MappingNode):
            for key, _ in parent.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                    return Position(key.start_mark.line + 1, key.start_mark.column + 1)
        return self.position(loc)

    def duplicate_keys(self) -> list[tuple[tuple[str | int, ...], Position]]:
        """(path, position) of every key written again in the same mapping."""
        found: list[tuple[tuple[str | int, ...], Position]] = []

        def walk(node: yaml.Node, path: tuple[str | int, ...]) -> None:
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key, value in node.value:
                    name = key.value if isinstance(key, yaml.ScalarNode) else str(key)
                    if name in seen:
                        mark = key.start_mark
                        found.append(((*path, name), Position(mark.line + 1, mark.column + 1)))
                    seen.add(name)
                    walk(value, (*path, name))
            elif isinstance(node, yaml.SequenceNode):
                for i, item in enumerate(node.value):
                    walk(item, (*path, i))

        if self.root is not None:
            walk(self.root, ())
        return found


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
