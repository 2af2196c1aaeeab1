"""deploy/wheels.py: a compiled module is judged by the glibc versions it
requires as the dynamic linker reads them, weak ones aside."""
import glob
import os
import zipfile

import pytest

from deploy import wheels


def shared_object(package):
    """The compiled module of an installed package: its bytes."""
    module = __import__(package)
    (path,) = glob.glob(os.path.join(os.path.dirname(module.__file__), "**", "*.so"),
                        recursive=True)
    with open(path, "rb") as f:
        return f.read()


def test_cbor2_requires_glibc_2_14_and_asks_for_newer_only_weakly():
    """Its wheel says manylinux_2_28, for statx, which it asks for weakly."""
    required = wheels.glibc_required(shared_object("cbor2"))
    assert max(required) == (2, 14) and (2, 28) not in required


def test_a_wheel_that_requires_a_newer_glibc_than_the_runtimes_is_refused(tmp_path):
    """This machine's cryptography (a manylinux_2_34 wheel) requires 2.34."""
    import cryptography.hazmat.bindings._rust as rust

    wheel = tmp_path / "cryptography-0-cp311-abi3-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z, open(rust.__file__, "rb") as f:
        z.writestr("cryptography/hazmat/bindings/_rust.abi3.so", f.read())
    with pytest.raises(SystemExit, match="needs glibc 2.34, newer than the runtime's 2.26"):
        wheels.check_wheel(str(wheel))


def test_a_wheel_within_the_runtimes_glibc_passes(tmp_path):
    wheel = tmp_path / "cbor2-0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("cbor2/_cbor2.cpython-311-x86_64-linux-gnu.so", shared_object("cbor2"))
    wheels.check_wheel(str(wheel))


def test_the_closure_follows_dependencies_and_their_markers(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\nwebauthn==3.0.1  # passkeys\n")
    found = wheels.closure(wheels.requirements(str(requirements)))
    assert {"webauthn", "cbor2", "cryptography", "cffi", "pyopenssl", "pyasn1"} <= set(found)
    assert "pytest" not in found  # pyOpenSSL's "test" extra
