"""Rebuild tests/data/refresh/wheels/ from real wheels (run by hand; the tests only read the result).

Each fixture wheel keeps the real wheel's name, `.dist-info/METADATA` and `WHEEL`, the `_version.py`/`_deps.py`
that record the build torch, the `aimet_torch/v1/__init__.py` marker, and every compiled module reduced with
`objcopy` to the sections the dynamic loader reads (.dynamic, .dynstr, .dynsym, .gnu.version, .gnu.version_r):
so NEEDED sonames and GLIBC symbol versions are the real ones, at a few hundred KiB instead of 10-40 MiB.
torch/torchvision wheels are reduced to their METADATA and WHEEL, read from PyPI with HTTP range requests.

    python tests/data/refresh/make_fixtures.py DIR_WITH_AIMET_WHEELS
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from qatdoctor.authoring.refresh import PyPIIndex, RangeFile

HERE = Path(__file__).parent / "wheels"
AIMET = (
    "aimet_torch-1.32.2-cp310-cp310-manylinux_2_34_x86_64.whl",
    "aimet_torch-1.32.2-cp38-cp38-manylinux_2_29_x86_64.whl",
    "aimet_torch-2.28.0-py310-none-any.whl",
    "aimet_torch-2.42.0-py310-none-any.whl",
)
METADATA_ONLY = (("torch", "2.15.0", "cp311-cp311-manylinux_2_28_x86_64"), ("torchvision", "0.29.2", "py3-none-manylinux_2_28_x86_64"))
KEEP = ("/_version.py", "/_deps.py", "aimet_torch/v1/__init__.py", ".dist-info/METADATA", ".dist-info/WHEEL")
SECTIONS = (".dynamic", ".dynstr", ".dynsym", ".gnu.version", ".gnu.version_r")


def reduce_elf(data: bytes) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        src, dst = Path(scratch) / "in.so", Path(scratch) / "out.so"
        src.write_bytes(data)
        args = [a for s in SECTIONS for a in ("-j", s)]
        subprocess.run(["objcopy", *args, str(src), str(dst)], check=True, capture_output=True)
        return dst.read_bytes()


def aimet(source: Path) -> None:
    with zipfile.ZipFile(source) as real, zipfile.ZipFile(HERE / source.name, "w", zipfile.ZIP_DEFLATED) as out:
        for info in real.infolist():
            name = info.filename
            data = real.read(info)
            if data[:4] == b"\x7fELF":
                out.writestr(info, reduce_elf(data))
            elif name.endswith(KEEP):
                out.writestr(info, data)


def metadata_only(name: str, version: str, tag: str) -> None:
    index = PyPIIndex()
    release = index.releases(name)[version]
    wheel = next(f for f in release.wheels if tag in f.filename)
    with zipfile.ZipFile(RangeFile(wheel.url)) as real, zipfile.ZipFile(HERE / wheel.filename, "w") as out:
        for info in real.infolist():
            if info.filename.endswith((".dist-info/METADATA", ".dist-info/WHEEL")):
                out.writestr(info, real.read(info))


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for filename in AIMET:
        aimet(Path(sys.argv[1]) / filename)
    for item in METADATA_ONLY:
        metadata_only(*item)
    for path in sorted(HERE.iterdir()):
        print(f"{path.stat().st_size:>8}  {path.name}")
