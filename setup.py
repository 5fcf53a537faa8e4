"""Ship the top-level workflows/ and themes/ folders inside the package as console/data/.

The source tree keeps them at the top level (where operators look for them); an installed
distribution (``pip install .``, not editable) finds them through ``console.paths``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        for folder in ("workflows", "themes"):
            source = ROOT / folder
            target = Path(self.build_lib) / "console" / "data" / folder
            if source.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(source, target)


setup(cmdclass={"build_py": BuildWithData})
