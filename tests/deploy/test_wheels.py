"""deploy/wheels.py: a compiled module is judged by the glibc versions it
requires as the dynamic linker reads them, weak ones aside."""
import zipfile

import pytest

from deploy import wheels


def shared_object(module_name):
    """The compiled module ``module_name`` as installed here: its bytes."""
    with open(__import__(module_name).__file__, "rb") as f:
        return f.read()


def test_cffis_backend_requires_glibc_2_14_at_most():
    """Its manylinux2014 wheel: within the runtime's glibc."""
    assert max(wheels.glibc_required(shared_object("_cffi_backend"))) <= (2, 17)


def test_a_wheel_that_requires_a_newer_glibc_than_the_runtimes_is_refused(tmp_path):
    """This machine's cryptography (a manylinux_2_34 wheel) requires 2.34."""
    import cryptography.hazmat.bindings._rust as rust

    wheel = tmp_path / "cryptography-0-cp311-abi3-manylinux_2_34_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z, open(rust.__file__, "rb") as f:
        z.writestr("cryptography/hazmat/bindings/_rust.abi3.so", f.read())
    with pytest.raises(SystemExit, match="needs glibc 2.34, newer than the runtime's 2.26"):
        wheels.check_wheel(str(wheel))


def test_a_wheel_within_the_runtimes_glibc_passes(tmp_path):
    wheel = tmp_path / "cffi-0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("_cffi_backend.cpython-311-x86_64-linux-gnu.so", shared_object("_cffi_backend"))
    wheels.check_wheel(str(wheel))


def test_the_closure_follows_dependencies_and_their_markers(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\nfido2==2.2.1  # passkeys\n")
    found = wheels.closure(wheels.requirements(str(requirements)))
    assert {"fido2", "cryptography", "cffi", "pycparser"} <= set(found)
    assert "pytest" not in found and "ssh" not in found  # cryptography's extras
