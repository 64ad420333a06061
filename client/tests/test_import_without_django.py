"""The client must work on an agent host that has no Django installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import foundation_client

CLIENT_DIR = Path(__file__).resolve().parent.parent

# Run in a fresh interpreter where importing Django (or any site app) fails as if not installed,
# then import the package and every submodule.
PROBE = """
import importlib, pkgutil, sys

BLOCKED = {"django", "foundation_site", "audit_app", "secrets_app", "telemetry_app",
           "messaging_app", "config_app", "agents_app"}

class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Blocker())
import foundation_client
for info in pkgutil.walk_packages(foundation_client.__path__, "foundation_client."):
    importlib.import_module(info.name)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print("ok", foundation_client.__version__)
"""


def test_the_package_and_every_submodule_import_without_django():
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=CLIENT_DIR,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_the_probe_really_blocks_django():
    probe = PROBE.replace("import foundation_client\n", "import django\n", 1)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "No module named 'django'" in result.stderr


def test_all_is_sorted_and_complete():
    assert foundation_client.__all__ == sorted(foundation_client.__all__)
    for name in foundation_client.__all__:
        assert hasattr(foundation_client, name)
