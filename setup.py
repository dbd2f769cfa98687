"""Builds the optional C kernel of the CPU log-mel front end (everything else is pyproject.toml).

``asc_sweep.data._melkernel`` computes the power and mel stages in one pass on CPUs; where it
cannot be compiled (no C compiler, as in slim container images) the install goes on without
it and the front end uses torch ops (same result to float32 rounding). OpenMP is used where
the compiler has it: the kernel then shares torch's thread count.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# No FP traps are relied on; without them compilers vectorise the kernel's selects.
FLAGS = ["-O3", "-fno-trapping-math", "-fopenmp"]


class OptionalBuildExt(build_ext):
    """Builds with OpenMP, then without it, then gives up quietly (the torch path remains)."""

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
            return
        except Exception as exc:
            print(f"asc-sweep: building {ext.name} with OpenMP failed ({exc})", file=sys.stderr)
        ext.extra_compile_args = ["-O3", "-fno-trapping-math"]
        ext.extra_link_args = []
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(
                f"asc-sweep: {ext.name} not built ({exc}); the CPU front end uses torch ops",
                file=sys.stderr,
            )


setup(
    ext_modules=[
        Extension(
            "asc_sweep.data._melkernel",
            sources=["asc_sweep/data/_melkernel.c"],
            extra_compile_args=FLAGS,
            extra_link_args=["-fopenmp"],
            optional=True,
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
