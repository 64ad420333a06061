"""Every error the client raises is a ``FoundationError`` (and a ``ValueError`` where that is the
convention), so that ``except FoundationError`` handles anything: each ``raise`` of the package is
read and its class checked."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import foundation_client
from foundation_client import FoundationError, InvalidArgument, MalformedMessage

PACKAGE = Path(foundation_client.__file__).parent
#: Raises that are not errors for an agent: an invariant of the code itself (at import), and a
#: re-raise of what the caller gave (``raise exc`` of a caught error, ``raise reply`` of
#: redis-py's within a method that turns it into ``WireUnavailable``).
NOT_CHECKED = {"AssertionError", "exc", "reply"}


def _raises() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name):
                    found.append((module, node.lineno, target.id))
    return found


def test_the_package_raises_many_things_so_the_check_below_reads_them():
    assert len(_raises()) > 40


@pytest.mark.parametrize(("module", "line", "name"), _raises())
def test_every_raise_is_a_foundation_error(module, line, name):
    if name in NOT_CHECKED:
        return
    error = getattr(importlib.import_module(module), name)
    assert issubclass(error, FoundationError), f"{module}:{line} raises {name}"


def test_bad_arguments_and_malformed_data_are_value_errors_too():
    assert issubclass(InvalidArgument, ValueError)
    assert issubclass(MalformedMessage, ValueError)
