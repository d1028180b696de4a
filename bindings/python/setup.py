"""The platform wheel: the binding with libhulynet inside it (pyproject.toml has the rest).

The wheel build copies a built libhulynet, stripped, into the package under its SONAME
(hulynet/libhulynet.so.0), where hulynet/_ffi.py looks first. The library is

- the file named by HULYNET_BUILD_LIBRARY when set (SwiftPM's .build/release/libHulyNetC.so, or a
  CMake build's lib/libhulynet.so.0.2.0), else
- built here: `swift build -c release --product HulyNetC` in the hulynet checkout around this
  directory (so the Swift toolchain is needed at build time, never at run time).

Its tags say where it runs: py3-none-manylinux_2_<N>_<arch>, with 2.N the newest glibc symbol
version the library needs, and <arch> its ELF machine. Its metadata names the system library it
needs and does not carry: Requires-External: libzmq (libzmq5 on Debian and Ubuntu).
"""

import os
import pathlib
import re
import shutil
import subprocess

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = pathlib.Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
ENV_BUILD_LIBRARY = "HULYNET_BUILD_LIBRARY"
REQUIRES_EXTERNAL = "libzmq (>=4.0.1)"
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}   # e_machine -> the wheel tag's architecture


def _run(command, **options):
    try:
        return subprocess.run(command, check=True, text=True, **options)
    except FileNotFoundError:
        raise SystemExit(f"hulynet wheel: {command[0]} not found (binutils provides strip and readelf)") from None


def built_library() -> pathlib.Path:
    given = os.environ.get(ENV_BUILD_LIBRARY)
    if given:
        path = pathlib.Path(given)
        if not path.is_file():
            raise SystemExit(f"hulynet wheel: {ENV_BUILD_LIBRARY}={given!r} is not a file")
        return path
    if not (CHECKOUT / "Package.swift").is_file():
        raise SystemExit(f"hulynet wheel: no hulynet checkout around {HERE} to build libhulynet in; set "
                         f"{ENV_BUILD_LIBRARY} to a built library (libHulyNetC.so or libhulynet.so.0.2.0)")
    swift = shutil.which("swift")
    if not swift:
        raise SystemExit(f"hulynet wheel: building libhulynet needs the Swift toolchain on PATH; or set "
                         f"{ENV_BUILD_LIBRARY} to a built library")
    command = [swift, "build", "-c", "release", "--package-path", str(CHECKOUT)]
    _run(command + ["--product", "HulyNetC"])
    bin_path = _run(command + ["--show-bin-path"], capture_output=True).stdout.strip()
    return pathlib.Path(bin_path) / "libHulyNetC.so"


def platform_tag(library: pathlib.Path) -> str:
    with open(library, "rb") as file:
        header = file.read(20)
    if header[:4] != b"\x7fELF" or header[5] != 1:
        raise SystemExit(f"hulynet wheel: {library} is not a little-endian ELF file")
    machine = int.from_bytes(header[18:20], "little")
    if machine not in ELF_MACHINES:
        raise SystemExit(f"hulynet wheel: {library} is for ELF machine {machine}, which has no wheel tag here")
    needs = _run(["readelf", "--version-info", "--wide", str(library)], capture_output=True).stdout
    glibc = max((tuple(int(part) for part in version.split("."))
                 for version in re.findall(r"Name: GLIBC_([0-9]+(?:\.[0-9]+)+)\b", needs)), default=None)
    if glibc is None:
        raise SystemExit(f"hulynet wheel: {library} needs no versioned glibc symbol; is it a glibc build?")
    return f"manylinux_{glibc[0]}_{glibc[1]}_{ELF_MACHINES[machine]}"


def soname(library: pathlib.Path) -> str:
    dynamic = _run(["readelf", "--dynamic", "--wide", str(library)], capture_output=True).stdout
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^]]+)\]", dynamic)
    if not found:
        raise SystemExit(f"hulynet wheel: {library} has no SONAME")
    return found.group(1)


class BuildPyWithLibrary(build_py):
    """Also puts the stripped library into the built package, and records the wheel's tag."""

    def run(self):
        super().run()
        library = built_library()
        target = pathlib.Path(self.build_lib) / "hulynet" / soname(library)
        self.announce(f"bundling {library} as {target} (stripped)", level=2)
        _run(["strip", "-o", str(target), str(library)])
        target.chmod(0o755)
        self.distribution.hulynet_platform_tag = platform_tag(target)


class PlatformDistribution(Distribution):
    def has_ext_modules(self):
        return True   # it carries a library for one platform: a platlib wheel (Root-Is-Purelib: false)


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        tag = getattr(self.distribution, "hulynet_platform_tag", None)
        if tag is None:
            raise SystemExit("hulynet wheel: the tag is known once build_py has bundled the library (no --skip-build)")
        return "py3", "none", tag

    def egg2dist(self, egginfo_path, distinfo_path):
        # Also reached from dist_info (pip's metadata step). setuptools writes no Requires-External,
        # so the field goes after the last header line of METADATA.
        super().egg2dist(egginfo_path, distinfo_path)
        metadata = pathlib.Path(distinfo_path) / "METADATA"
        headers, blank, body = metadata.read_text(encoding="utf-8").partition("\n\n")
        headers = f"{headers.rstrip()}\nRequires-External: {REQUIRES_EXTERNAL}\n"
        metadata.write_text(headers + ("\n" + body if blank else ""), encoding="utf-8")


def check_version() -> None:
    """The package's __version__ must be the checkout's VERSION (the one source) when built from it."""
    source = CHECKOUT / "VERSION"
    if not source.is_file():
        return  # an sdist or a copy outside the checkout: __version__ stands alone
    wanted = source.read_text().strip()
    found = re.search(r'^__version__ = "([^"]+)"', (HERE / "hulynet" / "__init__.py").read_text(), re.M)
    if found is None or found.group(1) != wanted:
        raise SystemExit(f"hulynet wheel: hulynet/__init__.py's __version__ is "
                         f"{found.group(1) if found else 'missing'}, VERSION says {wanted}")


check_version()
setup(distclass=PlatformDistribution, cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel})
