"""The lock files (``make lock``) pin every dependency pyproject.toml asks for, with hashes.

``requirements/lock.txt`` (the project and its dev extra) installs the development
virtualenv and CI; ``requirements/runtime.txt`` (the project alone) the image. A
dependency added or raised in pyproject.toml without ``make lock`` fails here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "lock.txt"
RUNTIME = ROOT / "requirements" / "runtime.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, tuple[Version, int]]:
    """Each pinned package with its version and how many hashes it carries."""
    found: dict[str, tuple[Version, int]] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
            found[current] = (Version(match[2]), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def _project() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}


def _unmet(requirements: list[str], locked: dict[str, tuple[Version, int]]) -> list[str]:
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate(
            {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
        ):
            continue
        pinned = locked.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not locked")
        elif not requirement.specifier.contains(pinned[0], prereleases=True):
            problems.append(f"{requirement.name}=={pinned[0]} does not meet {text!r}")
    return problems


def test_the_lock_pins_every_dependency_and_the_dev_extra() -> None:
    wanted = _project()
    assert _unmet(wanted["runtime"] + wanted["dev"], pins(LOCK)) == []


def test_the_runtime_lock_pins_the_dependencies_alone() -> None:
    wanted = _project()
    runtime = pins(RUNTIME)
    assert _unmet(wanted["runtime"], runtime) == []
    # the image carries no test or lint tool
    dev_only = {canonicalize_name(Requirement(text).name) for text in wanted["dev"]}
    assert dev_only & runtime.keys() == set()


def test_both_locks_agree_and_every_pin_has_a_hash() -> None:
    locked, runtime = pins(LOCK), pins(RUNTIME)
    assert runtime.keys() <= locked.keys()
    assert {name: runtime[name][0] for name in runtime} == {
        name: locked[name][0] for name in runtime
    }
    assert [name for name, (_, hashes) in {**locked, **runtime}.items() if hashes == 0] == []
