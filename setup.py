"""Build hook: compile acd_core's Cython router when Cython and a C compiler are present.

Everything else lives in pyproject.toml. The compiled router is an optional speed-up with a
pure-Python twin (acd_core/_router_py.py); when it cannot be built, the build still
succeeds and says so, and acd_core loads the twin.
"""

from __future__ import annotations

import glob
import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build extensions, but never fail the whole build because one could not compile."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any compiler failure means "use the twin"
            self._warn(exc)

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"acd_core: compiled router NOT built ({exc}); the pure-Python twin will be used",
            file=sys.stderr,
        )


def extensions() -> list[Any]:
    sources = sorted(glob.glob("acd_core/*.pyx"))
    if not sources:
        return []
    if os.environ.get("ACD_CORE_NO_EXTENSIONS") == "1":
        print("acd_core: ACD_CORE_NO_EXTENSIONS=1, building the pure-Python twin only")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("acd_core: Cython not available; the pure-Python twin will be used", file=sys.stderr)
        return []
    return list(
        cythonize(
            sources,
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
            quiet=True,
        )
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
