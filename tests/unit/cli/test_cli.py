"""cli/: ``ipt-ray validate`` starts without the heavy stages; every command reaches its module."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from ipt_ray.cli.main import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[3]
HEAVY = ("mlflow", "ray", "torch")

# Runs the CLI's main in a fresh interpreter, then lists which heavy packages it imported.
PROBE = f"""
import sys
from ipt_ray.cli import main
rc = main(sys.argv[1:])
print("rc", rc)
print("heavy", sorted(name for name in {HEAVY!r} if name in sys.modules))
"""


def test_validate_imports_neither_mlflow_ray_nor_torch():
    done = subprocess.run([sys.executable, "-c", PROBE, "validate", "experiments/quickstart.yaml"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "experiments/quickstart.yaml: valid (with its search space: 16 configs checked)" in lines
    assert "rc 0" in lines
    assert "heavy []" in lines, done.stdout


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "ipt_ray.cli", "validate", "experiments/quickstart.yaml"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("experiments/quickstart.yaml: valid")


def test_validate_checks_every_config_the_search_space_gives():
    """A value only the sweep would try is rejected by ``validate`` too, named, without the heavy stages."""
    done = subprocess.run([sys.executable, "-c", PROBE, "validate", "experiments/quickstart.yaml", "--set",
                           'sweep.search_space={"method.encoder": {"type": "choice", "values": ["cnn", "gru"]}}'],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "rc 2" in done.stdout.splitlines(), done.stdout + done.stderr
    assert "sweep.search_space.method.encoder: choice 'gru' gives an invalid config" in done.stdout + done.stderr
    assert "heavy []" in done.stdout


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_a_module_with_run(name):
    spec = importlib.util.find_spec(f"ipt_ray.cli.{COMMANDS[name].module}")
    assert spec is not None and spec.origin is not None
    # Found without importing it: the module (and its stage) loads only when the command runs.
    tree = ast.parse(Path(spec.origin).read_text())
    assert any(isinstance(node, ast.FunctionDef) and node.name == "run" for node in tree.body)


def test_parser_knows_every_command():
    parser = build_parser()
    assert parser.parse_args(["validate", "x.yaml", "--show"]).command == "validate"
    assert parser.parse_args(["validate-cluster", "a.yaml", "b.yaml"]).files == ["a.yaml", "b.yaml"]
    assert parser.parse_args(["report", "s1", "s2", "--sync"]).sweep == ["s1", "s2"]
    assert parser.parse_args(["sweep", "x.yaml", "--resume"]).resume is True
