"""The wheel is a whole controller: the collection content ships inside the package.

`build_py` copies the collection (roles/, playbooks/, plugins/, seeds/, meta/, ansible.cfg,
galaxy.yml, LICENSE, README.md) into `toolkit/_content/` of the build, where
`toolkit.paths.content_root()` finds it. A checkout or an editable install has no
`_content/` and uses the checkout itself. Everything else is declared in pyproject.toml."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CONTENT = ("roles", "playbooks", "plugins", "seeds", "meta",
           "ansible.cfg", "galaxy.yml", "LICENSE", "README.md")
LEFT_OUT = shutil.ignore_patterns("__pycache__", "*.pyc", ".molecule", ".cache")


class BuildWithContent(build_py):  # type: ignore[misc]
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "toolkit" / "_content"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in CONTENT:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=LEFT_OUT, symlinks=False)
            elif source.is_file():
                shutil.copy2(source, target / name)
            else:
                raise SystemExit(f"setup.py: collection content {name} is missing")


setup(cmdclass={"build_py": BuildWithContent})
