"""Plugin modules: strategies (or other registered pieces) defined outside ipt_ray.

An experiment's ``plugins`` list names dotted modules or ``.py`` files; each is imported once per
process before the config is validated, so the driver, every Tune trial and every Ray Train worker
registers the same strategies (files are loaded by path: a worker needs no ``sys.path`` of the driver's).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ipt_ray.config.base import ConfigError

_LOADED: dict[str, ModuleType] = {}


def load_plugins(names: list[str]) -> list[ModuleType]:
    return [load_plugin(name) for name in names]


def load_plugin(name: str) -> ModuleType:
    """Import ``name`` (a dotted module, or a path to a ``.py`` file) once per process."""
    if name in _LOADED:
        return _LOADED[name]
    if name.endswith(".py"):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"plugins: no such file {name!r}")
        # A stable name per file, the same in every process.
        module_name = f"ipt_ray_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"plugins: cannot import {name!r}: {err}") from None
    _LOADED[name] = module
    return module
