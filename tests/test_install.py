"""A plain install serves: the wheel carries every template and static file and every
migration's SQL, and
``serve --workers N``'s gunicorn master imports nothing that gevent must patch first.

``.ci/smoke-install`` goes further (installs the wheel, serves every page); these catch
the same mistakes in the test run.
"""

import configparser
import glob
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The files each package reads at run time besides its modules, by folder.
DATA_FOLDERS = {"receiver": ("templates", "static"), "archive": ("migrations",)}


def setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def data_files(package=None):
    """Every file but modules under those folders (of ``package``, else all), as wheel
    paths."""
    found = []
    names = [package] if package else list(DATA_FOLDERS)
    for path in sorted(path for name in names for folder in DATA_FOLDERS[name]
                       for path in (ROOT / name / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".py" \
                and not path.name.startswith(".") and not path.name.endswith("~"):
            found.append(path.relative_to(ROOT).as_posix())
    return found


def test_there_are_templates_and_static_files_to_ship():
    files = data_files()
    assert "receiver/templates/base.html" in files
    assert "receiver/static/app.css" in files
    assert "archive/migrations/m001_core.sql" in files


@pytest.mark.parametrize("package", sorted(DATA_FOLDERS))
def test_package_data_patterns_cover_every_template_and_static_file(package):
    """setup.cfg's [options.package_data] globs, matched as setuptools' build_py does
    (glob relative to the package folder): a template in a new sub-folder must be listed."""
    patterns = [line.strip() for line in
                setup_cfg()["options.package_data"][package].splitlines() if line.strip()]
    covered = set()
    for pattern in patterns:
        for match in glob.glob(str(ROOT / package / pattern), recursive=True):
            if os.path.isfile(match):
                covered.add(Path(match).relative_to(ROOT).as_posix())
    missing = [name for name in data_files(package) if name not in covered]
    assert not missing, f"not matched by setup.cfg [options.package_data]: {missing}"


@pytest.mark.slow
@pytest.mark.load  # a wheel build and a fresh venv: ~6 s
def test_the_wheel_holds_every_template_and_static_file(tmp_path):
    """Build the wheel as ``pip wheel .`` does, from a clean copy (a build/ folder left in
    the checkout could supply files the patterns no longer match)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    packages = {line.strip().split(".")[0] for line in
                setup_cfg()["options.packages.find"]["include"].splitlines() if line.strip()}
    for package in sorted(packages):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # Build isolation (pip's default): the test venv has neither the setuptools>=68 that
    # pyproject.toml asks for nor 'wheel', so --no-build-isolation cannot build here.
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "out"),
         str(source)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "out").glob("runware_archive-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    assert "receiver/templates/base.html" in inside
    assert "receiver/static/app.css" in inside
    assert "archive/migrations/m001_core.sql" in inside
    missing = [name for name in data_files() if name not in inside]
    assert not missing, f"not in {wheel.name}: {missing}"


def test_the_gunicorn_master_imports_nothing_gevent_must_patch_first():
    """``serve --workers N`` execs ``python -m receiver.production`` as gunicorn's master,
    and the workers fork from it, then patch. A module that took ``ssl.SSLContext`` by
    name before the patch (urllib3, so requests) keeps the blocking one: gevent then warns
    "Monkey-patching ssl after ssl has already been imported" in every worker."""
    script = textwrap.dedent("""
        import ssl, sys
        import receiver.production
        holders = sorted(
            name for name, module in list(sys.modules.items())
            if module is not None and name != "ssl"
            and any(value is ssl.SSLContext for value in list(vars(module).values())))
        print(" ".join(holders))
        print(" ".join(m for m in ("requests", "urllib3") if m in sys.modules))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    holders, imported = (run.stdout.splitlines() + ["", ""])[:2]
    assert not holders, f"hold the unpatched ssl.SSLContext: {holders}"
    assert not imported, f"imported by receiver.production: {imported}"
