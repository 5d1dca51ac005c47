"""The two locks, read as files: requirements.txt is the runtime (the DAGs, the package, the Docker image) and holds
no test tool; requirements-dev.txt adds the test, bench and demo tools at the runtime lock's versions; `make venv`
installs both, the Dockerfile only the runtime lock."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Never in the runtime lock or the image: the test runner and its plugins (any pytest-*), property testing, the
# browser driver, the demo's mail catcher, the bench chart.
TEST_ONLY = {"pytest", "pytest-timeout", "iniconfig", "hypothesis", "selenium", "aiosmtpd", "matplotlib"}
# importable names of the test-only packages: runtime code (the package less its dev servers, DAGs, plugins)
# imports none of them
TEST_ONLY_MODULES = {"pytest", "_pytest", "pytest_timeout", "hypothesis", "selenium", "aiosmtpd", "matplotlib"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: str) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a compiled lock."""
    found: dict[str, str] = {}
    for line in (REPO / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)(\s*;.*)?(\s*\\)?", line)
        assert match, f"{lock}: not a pin: {line!r}"
        found[canonical(match.group(1))] = match.group(3)
    return found


def requested(source: str) -> dict[str, str | None]:
    """name -> the ``==`` version asked for (or None) of every requirement line of a requirements*.in file."""
    found: dict[str, str | None] = {}
    for line in (REPO / source).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;,]+))?", line)
        assert match, f"{source}: cannot read {line!r}"
        found[canonical(match.group(1))] = match.group(4)
    return found


def excluded() -> set[str]:
    return set(requested("requirements-exclude.txt"))


@pytest.fixture(scope="module")
def runtime() -> dict[str, str]:
    return pins("requirements.txt")


@pytest.fixture(scope="module")
def dev() -> dict[str, str]:
    return pins("requirements-dev.txt")


def test_every_runtime_requirement_is_pinned_in_the_runtime_lock(runtime):
    wanted = requested("requirements.in")
    assert "apache-airflow" in wanted and "apache-airflow-providers-mysql" in wanted
    assert sorted(set(wanted) - set(runtime)) == []
    assert {name: (version, runtime[name]) for name, version in wanted.items()
            if version is not None and runtime[name] != version} == {}


def test_no_test_tool_is_in_the_runtime_lock(runtime):
    assert sorted(name for name in runtime if name in TEST_ONLY or name.startswith("pytest")) == []
    assert sorted(TEST_ONLY & set(requested("requirements.in"))) == []


def test_every_dev_requirement_is_pinned_at_the_runtime_version(runtime, dev):
    wanted = requested("requirements-dev.in")
    assert {"pytest", "pytest-timeout", "hypothesis", "selenium", "aiosmtpd"} <= set(wanted)
    assert sorted(set(wanted) - set(dev)) == []
    assert {name: (version, dev[name]) for name, version in wanted.items()
            if version is not None and dev[name] != version} == {}
    assert {name: (dev[name], runtime[name]) for name in set(dev) & set(runtime) if dev[name] != runtime[name]} == {}
    assert "-c requirements.txt" in (REPO / "requirements-dev.in").read_text().splitlines()


def test_excluded_packages_are_in_neither_lock(runtime, dev):
    assert "mysqlclient" in excluded()
    assert sorted(excluded() & (set(runtime) | set(dev))) == []


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = "\n".join(line for line in (REPO / "Dockerfile").read_text().splitlines()
                           if not line.lstrip().startswith("#"))  # the instructions, not the comments
    installs = [part for line in dockerfile.replace("\\\n", " ").splitlines() for part in line.split("&&")
                if "pip install" in part]
    assert any("-r requirements.txt" in line and "--excludes requirements-exclude.txt" in line for line in installs)
    assert "requirements-dev" not in dockerfile


def test_make_venv_installs_both_locks_and_lock_compiles_both():
    makefile = (REPO / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line and "-r requirements.txt" in line]
    assert len(install) == 1
    assert "-r requirements-dev.txt" in install[0] and "--excludes requirements-exclude.txt" in install[0]
    rule = makefile.split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "requirements.in -o requirements.txt" in rule and "requirements-dev.in -o requirements-dev.txt" in rule
    assert "--excludes requirements-exclude.txt" in makefile.split("COMPILE :=", 1)[1].splitlines()[0]


def _runtime_sources() -> list[Path]:
    package = REPO / "src" / "rostering"
    files = [path for path in package.rglob("*.py") if "devservers" not in path.relative_to(package).parts]
    return files + sorted((REPO / "dags").glob("*.py")) + sorted((REPO / "plugins").rglob("*.py"))


def test_runtime_code_imports_no_test_tool():
    """What the image runs (the package less rostering.devservers, the DAGs, the plugins) needs only the runtime
    lock."""
    offenders = []
    for path in _runtime_sources():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [f"{path.relative_to(REPO)}: {name}" for name in names
                          if name.split(".")[0] in TEST_ONLY_MODULES]
    assert offenders == []
