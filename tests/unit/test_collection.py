"""The collection gpuforge.infra as Galaxy, AWX or an execution environment gets it: the
built tarball holds collection content only, carries its licence, and declares every
collection its content uses, with ranges the pinned `ansible` package satisfies."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
BIN = Path(sys.executable).parent
FQCN = re.compile(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+\b")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> tarfile.TarFile:
    out = tmp_path_factory.mktemp("galaxy")
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = out.glob("gpuforge-infra-*.tar.gz")
    return tarfile.open(path)


def test_tarball_holds_collection_content_only(tarball: tarfile.TarFile) -> None:
    names = tarball.getnames()
    for required in ("MANIFEST.json", "FILES.json", "README.md", "LICENSE", "meta/runtime.yml",
                     "plugins/modules/gpu_facts.py", "playbooks/profiles.yml",
                     "seeds/models.yml", "roles/base/tasks/main.yml"):
        assert required in names, required
    top = {n.split("/")[0] for n in names}
    assert top <= {"MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md",
                   "meta", "roles", "playbooks", "plugins", "seeds"}, top
    leftovers = [n for n in names if re.search(
        r"(__pycache__|\.pyc$|_cache|\.venv|\.hypothesis|/molecule/|bench/results|\.egg-info)", n)]
    assert leftovers == []
    licence = tarball.extractfile("LICENSE")
    assert licence is not None and b"Apache License" in licence.read(200)


def test_manifest_declares_galaxy_dependencies(tarball: tarfile.TarFile) -> None:
    manifest = tarball.extractfile("MANIFEST.json")
    assert manifest is not None
    info = json.load(manifest)["collection_info"]
    assert info["dependencies"] == GALAXY["dependencies"]
    assert info["license"] == ["Apache-2.0"]


def _used_collections() -> set[str]:
    used: set[str] = set()
    for path in [*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/handlers/*.yml"),
                 *ROOT.glob("roles/*/templates/*"), *ROOT.glob("playbooks/*.yml")]:
        for match in FQCN.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1)
            if name.split(".")[0] in {"community", "ansible", "containers"} \
                    and name not in {"ansible.builtin", "ansible.legacy"}:
                used.add(name)
    return used


def test_every_collection_the_content_uses_is_declared() -> None:
    used = _used_collections()
    assert {"community.general", "ansible.posix"} <= used  # the scan sees real uses
    assert used <= set(GALAXY["dependencies"]), used - set(GALAXY["dependencies"])


def test_declared_ranges_are_met_by_the_bundled_collections() -> None:
    proc = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "--format",
                           "json"], capture_output=True, text=True, timeout=120, check=True)
    installed: dict[str, str] = {}
    for collections in json.loads(proc.stdout).values():
        for name, data in collections.items():
            installed.setdefault(name, data["version"])
    for name, wanted in GALAXY["dependencies"].items():
        assert name in installed, f"{name} is not installed with ansible"
        assert meets_requirements(installed[name], wanted), (name, installed[name], wanted)
