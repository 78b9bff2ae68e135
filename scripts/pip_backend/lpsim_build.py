"""`pip install .` and `pip install -e .` for lpsim's Python module, with no build requirement to download.

A PEP 517 / PEP 660 build backend of the standard library alone (pyproject.toml names it in-tree), so that pip
installs offline and for whatever python3 runs it (Debian's, pyenv's, a venv's, conda's): it configures the
CMake project with that interpreter (-DPython_EXECUTABLE), builds the one target `lpsim_python` (the pybind11
module, src/python/module.cpp, over the same core as the command line) and packs it into a wheel. The compilers,
CMake, pybind11 and the libraries come from the system (scripts/setup.sh installs them from Debian's packages).

config_settings (pip --config-settings KEY=VALUE): build-dir, the CMake build directory to use (default
build-python/<interpreter tag> in the checkout; an existing configured one, e.g. build, is only brought up to
date); jobs, parallel build jobs (default: every CPU).
"""
import base64
import hashlib
import os
import re
import subprocess
import sys
import sysconfig
import zipfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAME = "lpsim"


def _version():
    text = open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8").read()
    return re.search(r"project\(lpsim VERSION ([0-9.]+)", text).group(1)


def _tag():
    impl = sys.implementation.cache_tag  # cpython-311
    py = "cp" + impl.split("-")[1] if impl.startswith("cpython") else impl.replace("-", "")
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{py}-{py}-{plat}"


def _build(config_settings):
    settings = config_settings or {}
    build_dir = settings.get("build-dir") or os.path.join(ROOT, "build-python", sys.implementation.cache_tag)
    build_dir = os.path.abspath(build_dir)
    jobs = str(settings.get("jobs") or os.cpu_count() or 1)
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                        f"-DPython_EXECUTABLE={sys.executable}"], check=True, stdout=sys.stderr)
    subprocess.run(["cmake", "--build", build_dir, "--target", "lpsim_python", "-j", jobs], check=True,
                   stdout=sys.stderr)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    module = os.path.join(build_dir, "python", NAME + suffix)
    if not os.path.exists(module):
        found = [f for f in os.listdir(os.path.join(build_dir, "python")) if f.startswith(NAME + ".")]
        raise RuntimeError(f"lpsim: the build made {found} in {build_dir}/python, not {NAME + suffix}: that build "
                           f"directory was configured for another python (pass --config-settings build-dir=...)")
    return module


def _metadata():
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {_version()}\n"
            "Summary: Emulated-precision forward-error studies of transformers (the lpsim core from Python)\n"
            "Requires-Python: >=3.9\nRequires-Dist: numpy\n")


def _wheel(wheel_directory, files):
    """files: (name in the wheel, bytes). Writes the wheel with its dist-info and RECORD; returns its file name."""
    version, tag = _version(), _tag()
    info = f"{NAME}-{version}.dist-info"
    files = list(files) + [(f"{info}/METADATA", _metadata().encode()),
                           (f"{info}/WHEEL", f"Wheel-Version: 1.0\nGenerator: lpsim_build\nRoot-Is-Purelib: false\n"
                                             f"Tag: {tag}\n".encode())]
    record = []
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    wheel = f"{NAME}-{version}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files:
            z.writestr(name, data)
    return wheel


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = os.path.join(metadata_directory, f"{NAME}-{_version()}.dist-info")
    os.makedirs(info, exist_ok=True)
    with open(os.path.join(info, "METADATA"), "w") as f:
        f.write(_metadata())
    return os.path.basename(info)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    module = _build(config_settings)
    return _wheel(wheel_directory, [(os.path.basename(module), open(module, "rb").read())])


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # The module stays in the build directory; a .pth puts that directory on sys.path. After a C++ change, build the
    # target lpsim_python there (or run pip install -e . again).
    module = _build(config_settings)
    return _wheel(wheel_directory, [(f"__editable__.{NAME}.pth", (os.path.dirname(module) + "\n").encode())])
