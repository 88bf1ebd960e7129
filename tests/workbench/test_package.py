"""The installed `workbench` command: only its own runtime dependencies, no test tooling."""

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import workbench

ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLING = {"moto", "pytest", "litellm", "policy_sentry", "tools", "tests"}


def test_importing_every_module_of_the_package_loads_no_test_tooling():
    modules = [f"workbench.{module.name}" for module in pkgutil.iter_modules(workbench.__path__)
               if module.name != "__main__"]  # that one runs the command
    code = ("import importlib, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not set(result.stdout.split()) & TEST_TOOLING


def test_the_command_declares_what_it_imports_at_run_time():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement.split(">")[0].split("=")[0].lower() for requirement in project["dependencies"]}
    assert declared == {"boto3", "pyyaml"}
    assert project["scripts"] == {"workbench": "workbench.cli:main"}
