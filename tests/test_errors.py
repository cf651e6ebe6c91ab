"""Every exception class azhpc defines lives in (and is importable from) ``azhpc.errors``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import azhpc
import azhpc.errors


def _azhpc_modules() -> list[str]:
    names = ["azhpc"]
    for info in pkgutil.walk_packages(azhpc.__path__, prefix="azhpc."):
        names.append(info.name)
    return names


def test_errors_every_error_class_is_importable_from_azhpc_errors() -> None:
    missing = []
    for name in _azhpc_modules():
        if name.startswith("azhpc.emulator.batch"):
            # The emulator's internal ApiError / TransferError model Azure's error bodies on
            # the wire; they never reach a user.
            continue
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed
            continue
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, (azhpc.errors.AzhpcError, Warning))
                and value.__module__ == name
                and name != "azhpc.errors"
            ):
                missing.append(f"{name}.{attr}")
    assert missing == [], f"define these in azhpc/errors.py: {missing}"


def test_errors_all_lists_every_class() -> None:
    classes = {
        name
        for name, value in vars(azhpc.errors).items()
        if inspect.isclass(value)
        and value.__module__ == "azhpc.errors"
        and not name.startswith("_")
    }
    assert classes == set(azhpc.errors.__all__)
    bases = (azhpc.errors.AzhpcError, Warning)
    # ErrorCode is the enum of ADLA-style codes a UsqlError carries.
    assert all(issubclass(getattr(azhpc.errors, name), bases) for name in classes - {"ErrorCode"})
