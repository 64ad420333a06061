"""The packages' import graph: the layers import-linter holds (pyproject.toml), and no module
reaches itself through others at all, a package's own ``__init__`` included (which
import-linter's sibling contract does not see)."""

from __future__ import annotations

import graphlib
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "foundation_site",
    "secrets_app",
    "messaging_app",
    "config_app",
    "telemetry_app",
    "agents_app",
    "audit_app",
    "foundation_core",
    "foundation_client",
)


def test_no_module_imports_itself_through_others(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(ROOT), str(ROOT / "client"), *sys.path])
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False, cache_dir=None)
    # Every import counts, those inside functions too: a cycle deferred to call time is still
    # two modules that cannot be understood, tested or moved apart.
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert len(imports) > 150  # the whole site, not an empty graph
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"an import cycle: {' -> '.join(exc.args[1])}") from None
