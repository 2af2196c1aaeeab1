"""The last step of `make package`: compiled bytecode in the deployment zip
(after deploy/wheels.py adds what chalice left out).

    python -m deploy.package build/deployment.zip

Lambda's /var/task is read-only, so Python cannot cache bytecode there and
compiles every module it imports from the package at each cold start.
Shipping unchecked-hash .pyc files (valid whatever the files' mtimes) skips
that. They must come from the runtime's Python version.

It also refuses a zip that holds any of the project's folders besides
chalicelib/: Chalice zips only app.py and chalicelib/ today, and this keeps
it so (the example app under examples/ is another service's code).
"""
import argparse
import compileall
import os
import py_compile
import re
import shutil
import sys
import tempfile
import zipfile

RUNTIME = (3, 11)
# Packages that only the OpenAPI route loads: their bytecode would add
# 280 KB to the zip and save nothing on a cold start.
NOT_COMPILED = ("apispec", "packaging")
# What the packages bring that nothing loads at run time: cffi's Python
# package and pycparser build cryptography's bindings (the compiled
# _cffi_backend that they load ships), and a wheel's .data folder holds an
# installer's files (segno's man page).
NOT_LOADED = re.compile(r"(cffi|pycparser)(/|-[^/]*\.dist-info/)|[^/]+\.data/")
# The zip's bound. fido2 needs cryptography, whose compiled module is
# about 4.9 MB of the zip (15 MB unpacked), so the 1 MiB that held before
# passkeys cannot; this still catches a package shipped by mistake (boto3
# would add about 15 MB). Lambda itself takes up to 50 MB.
ZIP_BOUND = 10 * 1024 * 1024
# The project's folders that never ship: build, tests, local tools, docs,
# and the example resource server.
NOT_SHIPPED = (".chalice/", ".local/", "build/", "deploy/", "devserver/", "docs/", "examples/",
               "tests/")


def check_contents(names):
    """Refuse a zip whose entries include a folder that must not ship."""
    extra = sorted(n for n in names if n.startswith(NOT_SHIPPED))
    if extra:
        raise SystemExit(f"the deployment zip must not hold {', '.join(extra[:5])}")


def compile_zip(path, runtime=RUNTIME):
    """Rewrite the zip at ``path`` with bytecode beside its modules, its
    entries sorted and dated 1980, so the same sources give the same bytes."""
    if sys.version_info[:2] != runtime:
        raise SystemExit(f"bytecode for python{runtime[0]}.{runtime[1]} needs that Python")
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(path) as z:
            check_contents(z.namelist())
            z.extractall(tmp, [n for n in z.namelist() if not NOT_LOADED.match(n)])
        skip = "|".join(NOT_COMPILED)
        compileall.compile_dir(tmp, quiet=1, workers=1, rx=re.compile(rf"/({skip})/"),
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        rebuilt = path + ".new"
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            for folder, _, files in sorted(os.walk(tmp)):
                for name in sorted(files):
                    full = os.path.join(folder, name)
                    info = zipfile.ZipInfo(os.path.relpath(full, tmp),
                                           date_time=(1980, 1, 1, 0, 0, 0))
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with open(full, "rb") as f:
                        z.writestr(info, f.read())
        shutil.move(rebuilt, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="the zip chalice package wrote")
    path = parser.parse_args(argv).path
    from deploy import wheels  # the wheels chalice refused for their manylinux tag

    for name in wheels.complete(path):
        print(f"added {name} from its manylinux wheel (deploy/wheels.py)", file=sys.stderr)
    compile_zip(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
