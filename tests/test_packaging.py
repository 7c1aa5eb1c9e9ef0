"""The two dependency lists (pyproject.toml for pip, environment.yml for conda) must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _specs(requirements: list[str]) -> dict[str, str]:
    return {_name(r): r.replace(" ", "")[len(_name(r)) :] for r in requirements}


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_side = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra
    ]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda_side = [d for d in env if isinstance(d, str) and not d.startswith(("python", "pip"))]
    pip_in_env = next(d["pip"] for d in env if isinstance(d, dict))
    conda_side += [d for d in pip_in_env if not d.startswith("-e")]
    pip_specs, conda_specs = _specs(pip_side), _specs(conda_side)
    assert pip_specs.keys() == conda_specs.keys(), (
        f"only in pyproject: {sorted(pip_specs.keys() - conda_specs.keys())}, "
        f"only in environment.yml: {sorted(conda_specs.keys() - pip_specs.keys())}"
    )
    torch_pin = conda_specs.pop("torch")
    assert torch_pin == "==2.13.0"
    assert pip_specs.pop("torch").startswith(">=")
    assert pip_specs == conda_specs


def test_makefile_pins_torch_to_the_local_cpu_wheel():
    assert "TORCH_PIN := torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_data_gen_never_imports_torch_or_ccs_fno():
    pattern = re.compile(r"^\s*(import|from)\s+(torch|ccs_fno)\b", re.MULTILINE)
    offenders = [p.name for p in (ROOT / "data_gen").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_data_gen_workers_stay_light():
    import subprocess
    import sys

    code = (
        "import sys, data_gen.pipeline, data_gen.store, data_gen.physics, data_gen.geology; "
        "heavy = [m for m in ('torch', 'ccs_fno') if m in sys.modules]; print(heavy); assert not heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_public_api_is_reexported_lazily():
    import subprocess
    import sys

    code = (
        "import sys, ccs_fno, data_gen; assert 'torch' not in sys.modules; "
        "missing = [n for n in ccs_fno.__all__ if getattr(ccs_fno, n, None) is None]; "
        "missing += [n for n in data_gen.__all__ if getattr(data_gen, n, None) is None]; "
        "assert not missing, missing; assert callable(ccs_fno.load_surrogate)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
