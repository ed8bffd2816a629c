"""YAML loading that remembers where every value came from, so errors can name FILE:LINE:COL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


class YamlDocument:
    """Parsed data plus the node tree it came from."""

    def __init__(self, text: str):
        self.root = yaml.compose(text, Loader=yaml.SafeLoader)
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
