"""The site and the agents agree through ``foundation_client.protocol`` alone: no site module
imports a private ``foundation_client._*`` name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = [
    "foundation_site",
    "audit_app",
    "secrets_app",
    "telemetry_app",
    "messaging_app",
    "config_app",
    "agents_app",
    "benchmarks",
    "tests",
]


def private_imports(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
            modules += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            parts = module.split(".")
            if parts[0] == "foundation_client" and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{path.relative_to(root)}:{node.lineno} {module}")
    return found


def test_no_site_module_imports_a_private_client_name():
    offenders = [
        hit
        for package in SITE
        for path in sorted((ROOT / package).rglob("*.py"))
        for hit in private_imports(path)
    ]
    offenders += private_imports(ROOT / "conftest.py")
    assert offenders == []


def test_the_check_sees_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import foundation_client._wire\nfrom foundation_client import _sealing\n")
    assert private_imports(sample, tmp_path) == [
        "sample.py:1 foundation_client._wire",
        "sample.py:2 foundation_client._sealing",
    ]
