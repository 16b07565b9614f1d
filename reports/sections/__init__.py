"""Report sections: the extension point for adding a part to the report without touching the main templates.

A section is one module in this package, found automatically (``pkgutil``), defining

    ORDER: int      # where it goes: below 100 above the policy detail (the summary and scorecard are the
                    # report's own, at the very top); 100..900 among the detail, whose built-in parts stand at
                    # DETAIL_ORDER below (a section goes after every built-in part with a lower or equal ORDER)
    TITLE: str      # its heading
    def build(evidence: reports.build.DecidedEvidence, store: RunStore) -> dict | None

and two templates, ``reports/templates/sections/<module>.html.j2`` and ``<module>.md.j2``, rendered with ``s``
(the dict ``build`` returned) and the report's filters (``fmt``, ``signed``; in Markdown also ``md`` and
``code``, through which every field must go). ``None`` omits the section. A ``build`` that raises fails the
report with an error naming the section (an input error it raises, naming a file, passes through as it is): a
report that quietly left a part out would lie by omission.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from harness.core.errors import NiftError

# Where the report's built-in detail parts stand, so a section can say "after the policy rules" by its ORDER.
DETAIL_ORDER = {"policy": 100, "comparisons": 200, "metrics": 300, "review": 400, "outputs": 500, "data": 600,
                "ablation": 700, "identities": 800, "reproducibility": 900}


class SectionError(NiftError):
    """A section module that is malformed or whose ``build`` failed; the report is not written (exit 2)."""


@dataclass(frozen=True)
class BuiltSection:
    """One section as the templates render it."""

    name: str  # the module name, also its templates' name and its anchor (id="section-<name>")
    order: int
    title: str
    data: dict[str, Any]


def discover(package: str = __name__) -> list[ModuleType]:
    """Every section module of ``package``, sorted by (ORDER, name); refused when one lacks ORDER, TITLE or build."""
    parent = importlib.import_module(package)
    modules = []
    for info in pkgutil.iter_modules(parent.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        missing = [a for a in ("ORDER", "TITLE", "build") if not hasattr(module, a)]
        if missing:
            raise SectionError(f"report section {module.__name__} lacks {', '.join(missing)}")
        if not isinstance(module.ORDER, int) or not callable(module.build):
            raise SectionError(f"report section {module.__name__}: ORDER must be an int and build a function")
        modules.append(module)
    return sorted(modules, key=lambda m: (m.ORDER, m.__name__))


def build_sections(evidence: Any, store: Any, modules: list[ModuleType] | None = None) -> list[BuiltSection]:
    """Run every section's ``build``; the ones that return a dict, in ORDER."""
    built = []
    for module in discover() if modules is None else modules:
        name = module.__name__.rsplit(".", 1)[-1]
        try:
            data = module.build(evidence, store)
        except NiftError:  # bad input a section read (a malformed registry): its own one-line error, exit 2
            raise
        except Exception as exc:
            raise SectionError(f"report section {name!r} ({module.__name__}.build) failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        if data is None:
            continue
        if not isinstance(data, dict):
            raise SectionError(f"report section {name!r} returned {type(data).__name__}, not a dict or None")
        built.append(BuiltSection(name=name, order=module.ORDER, title=str(module.TITLE), data=data))
    return built
