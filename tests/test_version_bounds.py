"""The lowest CI environment installs exactly the lower bounds setup.cfg declares.

tox's ``py311-lowest`` env installs with constraints/lowest.txt; a bound raised or lowered in one
file and not the other would leave a declared version untested.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parent.parent
SETUP_CFG = REPO_ROOT / "setup.cfg"
CONSTRAINTS = REPO_ROOT / "constraints" / "lowest.txt"
# The ranges the matrix proves: the install requirements and the Django and metrics extras.
TESTED_EXTRAS = ("django", "metrics")


def requirement_lines(value: str) -> list[Requirement]:
    return [Requirement(line) for line in value.splitlines() if line.strip()]


def declared_requirements() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    setup = configparser.ConfigParser()
    setup.read(SETUP_CFG)
    extras = {name: requirement_lines(value) for name, value in setup["options.extras_require"].items()}
    return requirement_lines(setup["options"]["install_requires"]), extras


def lower_bound(requirement: Requirement) -> str:
    [bound] = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return bound


def pinned_versions() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_the_lowest_constraints_pin_exactly_the_declared_lower_bounds():
    install_requires, extras = declared_requirements()
    tested = install_requires + [req for extra in TESTED_EXTRAS for req in extras[extra]]
    declared = {canonicalize_name(req.name): lower_bound(req) for req in tested}
    assert pinned_versions() == declared


def test_every_extra_names_the_same_lower_bound_for_a_pinned_package():
    _, extras = declared_requirements()
    pins = pinned_versions()
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            if name in pins:
                assert lower_bound(requirement) == pins[name], f"[{extra}] {requirement}"
