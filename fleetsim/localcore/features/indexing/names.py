"""Direct lookup of `thingName:` terms, so the common query does not scan the index (pure).

`NameLookup` keeps the indexed thing names by their case-folded form (search values are
case-insensitive, "Query syntax"); `candidates` reads a query tree and says which things can
possibly match it: for `thingName:value` the things whose folded name is the folded value, for
`thingName:prefix*` those whose folded name starts with the folded prefix, for AND the
smallest candidate set of its parts, for OR the union if every part has one; anything else
(other fields, NOT, ranges, other wildcards) has none, and the whole index is scanned. The
predicate still decides each candidate, so a lookup never changes what a query returns.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fleetsim.localcore.features.indexing.query import And, Node, Or, Term

NAME_FIELD = "thingName"
_PREFIX = re.compile(r"[^*?\\]*\*")  # a trailing * and no other wildcard or escape


class NameLookup:
    """Thing names by case-folded name; the sorted folded names kept for prefixes."""

    def __init__(self, names: Iterable[str] = ()):
        self._folded: dict[str, set[str]] = {}
        self._sorted: list[str] | None = None
        for name in names:
            self.add(name)

    def __len__(self) -> int:
        return sum(len(s) for s in self._folded.values())

    def add(self, name: str) -> None:
        folded = name.casefold()
        same = self._folded.get(folded)
        if same is None:
            self._folded[folded] = {name}
            self._sorted = None
        else:
            same.add(name)

    def discard(self, name: str) -> None:
        folded = name.casefold()
        same = self._folded.get(folded)
        if same is None or name not in same:
            return
        same.discard(name)
        if not same:
            del self._folded[folded]
            self._sorted = None

    def exact(self, value: str) -> set[str]:
        return set(self._folded.get(value.casefold(), ()))

    def prefix(self, prefix: str) -> set[str]:
        if self._sorted is None:  # rebuilt only after names came or went
            self._sorted = sorted(self._folded)
        keys, folded = self._sorted, prefix.casefold()
        out: set[str] = set()
        for i in range(bisect_left(keys, folded), len(keys)):
            if not keys[i].startswith(folded):
                break
            out |= self._folded[keys[i]]
        return out


def candidates(node: Node, lookup: NameLookup) -> set[str] | None:
    """The things that can match `node` (None: any thing can; scan them all)."""
    if isinstance(node, Term):
        if node.field != NAME_FIELD:
            return None
        if node.kind == "match":
            return lookup.exact(node.value)
        if node.kind == "wildcard" and _PREFIX.fullmatch(node.value):
            return lookup.prefix(node.value[:-1])
        return None
    if isinstance(node, And):
        sets = [s for s in (candidates(n, lookup) for n in node.items) if s is not None]
        return min(sets, key=len) if sets else None
    if isinstance(node, Or):
        union: set[str] = set()
        for item in node.items:
            found = candidates(item, lookup)
            if found is None:
                return None
            union |= found
        return union
    return None  # Not: everything but some things


def matching(docs: Mapping[str, Mapping[str, Sequence[Any]]], lookup: NameLookup, node: Node,
             predicate: Callable[[Mapping[str, Sequence[Any]]], bool]) -> list[str]:
    """The names of the documents that satisfy the query: its candidates only (in name
    order) when it has them, otherwise every document (in index order)."""
    found = candidates(node, lookup)
    if found is None:
        return [name for name, doc in docs.items() if predicate(doc)]
    return [name for name in sorted(found)
            if (doc := docs.get(name)) is not None and predicate(doc)]
