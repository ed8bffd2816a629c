"""Layering rules of local core, checked on the source (import-linter will take over):
a feature's store is imported only by its own feature; the layers never import the
composition root; the broker never imports the database."""

from __future__ import annotations

import ast
from pathlib import Path

import fleetsim

PACKAGE = Path(fleetsim.__file__).parent
ROOTS = (PACKAGE, PACKAGE.parent / "bench", PACKAGE.parent / "tests")


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module) for every Python file of the project."""
    out = []
    for root in ROOTS:
        for path in root.rglob("*.py"):
            module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module:
                    out += [(module, node.module)]
                    out += [(module, f"{node.module}.{a.name}") for a in node.names]
                elif isinstance(node, ast.Import):
                    out += [(module, a.name) for a in node.names]
    return out


def test_a_feature_store_is_imported_only_by_its_feature() -> None:
    features = "fleetsim.localcore.features."
    for importer, imported in imports():
        if imported.startswith(features) and imported.endswith(".store"):
            feature = imported[:-len(".store")]
            assert importer.startswith(feature + "."), f"{importer} imports {imported}"


def test_layers_do_not_import_the_composition_root_and_broker_not_the_db() -> None:
    for importer, imported in imports():
        if importer.startswith(("fleetsim.localcore.features", "fleetsim.localcore.api",
                                "fleetsim.localcore.broker", "fleetsim.localcore.db")):
            assert imported != "fleetsim.localcore.core", f"{importer} imports the core"
        if importer.startswith("fleetsim.localcore.broker"):
            assert not imported.startswith("fleetsim.localcore.db"), importer
