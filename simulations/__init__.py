"""Pattern Lab's simulations: a deterministic kernel and one module per lab.

Nothing in this package imports Django, Celery or Redis.  Each lab module
defines one `Lab` subclass with a `slug`; `labs()` finds them all.
"""

from __future__ import annotations

import importlib
import pkgutil

from .kernel import Lab, SimError

_NOT_LABS = {"kernel", "cli", "__main__"}
_registry: dict[str, type[Lab]] = {}


def labs() -> dict[str, type[Lab]]:
    """Every lab, by slug, in alphabetical order."""
    if not _registry:
        found = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            if info.name in _NOT_LABS or info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{__name__}.{info.name}")
            for obj in vars(module).values():
                if isinstance(obj, type) and issubclass(obj, Lab) and obj.slug and obj.__module__ == module.__name__:
                    found[obj.slug] = obj
        _registry.update(sorted(found.items()))
    return _registry


def get_lab(slug: str) -> type[Lab]:
    lab = labs().get(slug)
    if lab is None:
        raise SimError(f"there is no lab '{slug}' (labs: {', '.join(labs())})")
    return lab


__all__ = ["Lab", "SimError", "get_lab", "labs"]
