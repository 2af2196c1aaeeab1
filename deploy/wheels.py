"""Wheels that `chalice package` leaves out although the runtime loads them.

chalice takes a manylinux wheel only when its tag names a glibc no newer
than the Lambda runtime's (2.26 for python3.11, on Amazon Linux 2), and
otherwise warns and ships the zip without the package. A wheel's tag is a
bound, not its need: a package that publishes only manylinux_2_28 wheels
may well require nothing past 2.17 (Rust's std, for one, asks for statx
weakly and falls back without it). Today every package of the closure
ships a wheel chalice takes (fido2 is pure Python; cryptography and cffi
publish manylinux2014 wheels), so nothing is added; a dependency that
moves to newer tags is added here, or refuses the build.

So each distribution of requirements.txt's closure that the zip lacks is
added from its manylinux wheel of the version installed here, after every
shared object in it is checked as the dynamic linker checks it: each glibc
version it requires without the weak flag must be the runtime's or older.
Anything else refuses the build, rather than ship a function that fails
at its first passkey.
"""
import glob
import importlib.metadata
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIME_GLIBC = (2, 26)
# The tags asked of the index: newer than chalice takes, up to what the
# check above may still accept (a wheel's tag is a bound, not its need).
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(27, 41)]
_VERNEED, _WEAK = 0x6FFFFFFE, 0x2


def requirements(path):
    """The requirement lines of a requirements file, comments aside."""
    with open(path, encoding="utf-8") as f:
        return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]


def closure(lines):
    """The canonical names and installed versions of the distributions that
    requirement ``lines`` need, their dependencies' dependencies included."""
    todo = [Requirement(line) for line in lines]
    found = {}
    while todo:
        wanted = todo.pop()
        name = canonicalize_name(wanted.name)
        if name in found or (wanted.marker and not wanted.marker.evaluate({"extra": ""})):
            continue
        dist = importlib.metadata.distribution(name)
        found[name] = dist.version
        todo.extend(Requirement(r) for r in dist.requires or ())
    return found


def shipped(names):
    """The canonical names of the distributions whose metadata is in a zip."""
    return {canonicalize_name(n.split("/")[0].split("-")[0])
            for n in names if n.split("/")[0].endswith(".dist-info")}


def glibc_required(data):
    """The glibc versions an ELF shared object requires without the weak
    flag (its GNU version needs on libc and friends), as tuples."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize)
                for i in range(shnum)]
    required = set()
    for _, kind, _, _, offset, _, link, _, _, _ in sections:
        if kind != _VERNEED:
            continue
        strings = sections[link][4]
        need = offset
        while True:
            _, count, _, aux, following = struct.unpack_from("<HHIII", data, need)
            entry = need + aux
            for _ in range(count):
                _, flags, _, name, nxt = struct.unpack_from("<IHHII", data, entry)
                text = data[strings + name:data.index(b"\0", strings + name)].decode()
                if text.startswith("GLIBC_") and not flags & _WEAK:
                    required.add(tuple(int(p) for p in text[6:].split(".")))
                entry += nxt
            if not following:
                break
            need += following
    return required


def check_wheel(path, runtime=RUNTIME_GLIBC):
    """Refuse a wheel with a shared object that needs a newer glibc."""
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if ".so" in os.path.basename(name):
                newest = max(glibc_required(z.read(name)), default=(2, 0))
                if newest > runtime:
                    raise SystemExit(f"{os.path.basename(path)}: {name} needs glibc "
                                     f"{'.'.join(map(str, newest))}, newer than the runtime's "
                                     f"{'.'.join(map(str, runtime))}")


def download(name, version, folder):
    """The manylinux wheel of ``name`` ``version`` for the runtime's CPython."""
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    run = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                          "--only-binary=:all:", "--implementation", "cp", "--python-version",
                          "3.11", "--abi", "cp311", "--abi", "abi3", *platforms, "--dest", folder,
                          f"{name}=={version}"], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"no manylinux wheel of {name} {version}: {run.stderr.strip()}")
    (path,) = glob.glob(os.path.join(folder, "*.whl"))
    return path


def complete(zip_path, requirements_path=os.path.join(ROOT, "requirements.txt")):
    """Add to the zip each missing distribution of the closure; their names."""
    with zipfile.ZipFile(zip_path) as z:
        have = shipped(z.namelist())
    missing = {n: v for n, v in closure(requirements(requirements_path)).items()
               if n not in have}
    for name, version in sorted(missing.items()):
        with tempfile.TemporaryDirectory() as folder:
            wheel = download(name, version, folder)
            check_wheel(wheel)
            with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(zip_path, "a") as z:
                for entry in source.infolist():
                    z.writestr(entry, source.read(entry))
    return sorted(missing)
