"""Every property test runs derandomized in the default profile: CI never passes or fails by
luck, and nothing a test module says on its own undoes that."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings

import tests
from tests.properties import PROFILE


def property_tests() -> Iterator[tuple[str, Any]]:
    """(name, function) of every @given test in the suite's modules."""
    for module_info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        module = importlib.import_module(module_info.name)
        candidates = [*vars(module).items()]
        for cls_name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__:
                candidates += [(f"{cls_name}.{n}", f) for n, f in vars(cls).items()]
        for name, function in candidates:
            if getattr(function, "is_hypothesis_test", False) and name.startswith(
                ("test_", "Test")
            ):
                yield f"{module.__name__}::{name}", function


def test_the_suite_has_property_tests() -> None:
    found = dict(property_tests())
    assert len(found) >= 10, sorted(found)


@pytest.mark.skipif(PROFILE != "ci", reason="checks the default profile only")
def test_every_property_test_is_derandomized_with_enough_examples() -> None:
    assert settings.default.derandomize
    assert settings.default.database is None
    for name, function in property_tests():
        used = function._hypothesis_internal_use_settings
        assert used.derandomize, f"{name} runs random examples in CI"
        assert used.database is None, f"{name} replays examples from an earlier run"
        assert getattr(function, "_hypothesis_internal_use_seed", None) is None, name
        assert used.max_examples >= 10, f"{name}: {used.max_examples}"
