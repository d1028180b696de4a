"""Loading the library, the function table, versions and the exception classes."""

import os
import pathlib
import pickle
import re
import subprocess
import sys

import pytest

import hulynet
from hulynet import _ffi, errors

BINDING = pathlib.Path(__file__).resolve().parent.parent
HEADER = BINDING.parent.parent / "include" / "hulynet.h"
# An installed platform wheel under test, with the library inside it (see conftest.py).
BUNDLED = bool(os.environ.get("HULYNET_TEST_BUNDLED"))


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", hulynet.library_version())
    assert hulynet.__version__ == hulynet.library_version()  # the binding is the library's version
    major, minor, patch = map(int, hulynet.library_version().split("."))
    assert _ffi.lib.hulynet_version_number() == major * 10000 + minor * 100 + patch
    if not BUNDLED:
        assert os.path.samefile(hulynet.library_path, os.environ["HULYNET_LIBRARY"])


@pytest.mark.skipif(not BUNDLED, reason="not testing an installed platform wheel (HULYNET_TEST_BUNDLED)")
def test_the_wheel_loads_the_library_inside_it():
    package = pathlib.Path(hulynet.__file__).resolve().parent
    assert BINDING not in package.parents, f"{package} is the source tree, not an installed package"
    assert pathlib.Path(hulynet.library_path).resolve() == package / _ffi.SONAME


def test_the_bundled_copy_comes_before_an_installed_library(tmp_path):
    (tmp_path / _ffi.SONAME).symlink_to(os.path.realpath(hulynet.library_path))
    _, path = _ffi._load(environ={}, package_dir=str(tmp_path))
    assert path == str(tmp_path / _ffi.SONAME)


def test_the_library_variable_comes_before_the_bundled_copy(tmp_path):
    (tmp_path / _ffi.SONAME).write_bytes(b"not a library")
    library = os.path.realpath(hulynet.library_path)
    _, path = _ffi._load(environ={_ffi.ENV_LIBRARY: library}, package_dir=str(tmp_path))
    assert path == library


def test_strerror():
    assert hulynet.strerror(0) == "ok"
    assert hulynet.strerror(-4) == "timed out"
    assert hulynet.strerror(-1000) == "unknown status"


def test_table_covers_the_header():
    """Every function of hulynet.h is declared once in the table, and nothing else is."""
    if not HEADER.exists():
        pytest.skip("hulynet.h is not beside this binding")
    declared = set(re.findall(r"HULYNET_API[^;(]*?\b(hulynet_\w+)\s*\(", HEADER.read_text()))
    names = [item[0] for item in _ffi.FUNCTIONS]
    assert len(names) == len(set(names))
    assert set(names) == declared


def test_every_status_function_is_checked():
    for item in _ffi.FUNCTIONS:
        name, restype = item[0], item[2]
        if restype is _ffi.c_int and name not in ("hulynet_server_port", "hulynet_callback_threads"):
            assert len(item) > 3 and item[3] is _ffi._check_status, name


def test_callback_threads():
    before = hulynet.callback_threads()
    assert before >= 1
    with pytest.raises(hulynet.InvalidArgument):
        hulynet.set_callback_threads(-1)
    hulynet.set_callback_threads(5)
    assert hulynet.callback_threads() == 5
    hulynet.set_callback_threads(before)
    assert hulynet.callback_threads() == before


@pytest.mark.parametrize("code, cls, builtin", [
    (-1, hulynet.InvalidArgument, ValueError),
    (-2, hulynet.InvalidJSON, ValueError),
    (-3, hulynet.NotFound, LookupError),
    (-4, hulynet.Timeout, TimeoutError),
    (-5, hulynet.Closed, Exception),
    (-6, hulynet.RemoteError, Exception),
    (-7, hulynet.BindError, OSError),
    (-8, hulynet.ConnectError, ConnectionError),
    (-9, hulynet.InternalError, Exception),
    (-10, hulynet.RetryLater, Exception),
    (-11, hulynet.LimitReached, Exception),
])
def test_error_classes(code, cls, builtin):
    error = errors.error_for(code, "detail")
    assert type(error) is cls
    assert isinstance(error, hulynet.Error) and isinstance(error, builtin)
    assert error.code == code and error.message == "detail" and str(error) == "detail"
    assert repr(error) == f"{cls.__name__}({code}, 'detail')"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.code == code and copy.message == "detail"
    # The message defaults to the status's name.
    assert cls().message == hulynet.strerror(code)


def test_unknown_status_is_internal():
    error = errors.error_for(-77, "odd")
    assert type(error) is hulynet.InternalError and error.code == -77


def _import_in_subprocess(env):
    code = "import hulynet"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=str(BINDING), capture_output=True, text=True,
                          timeout=30)


def test_bad_library_path_is_a_clear_import_error():
    env = dict(os.environ, HULYNET_LIBRARY="/nonexistent/libhulynet.so", PYTHONPATH=str(BINDING))
    result = _import_in_subprocess(env)
    assert result.returncode != 0
    assert "LibraryNotFoundError" in result.stderr
    assert "HULYNET_LIBRARY='/nonexistent/libhulynet.so'" in result.stderr


def test_missing_library_names_both_ways():
    env = {k: v for k, v in os.environ.items() if k not in ("HULYNET_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(BINDING)
    result = _import_in_subprocess(env)
    if result.returncode == 0:
        pytest.skip("libhulynet loads without HULYNET_LIBRARY here (installed, or inside the installed wheel)")
    assert "LibraryNotFoundError" in result.stderr
    assert "HULYNET_LIBRARY" in result.stderr and "libhulynet.so.0" in result.stderr


def test_library_not_found_is_an_import_error():
    assert issubclass(hulynet.LibraryNotFoundError, ImportError)


def test_open_objects_are_closed_at_exit():
    """A program that leaves a server, clients, an agent with containers and connections open exits
    cleanly: the binding closes them at exit, before the interpreter goes."""
    program = r'''
import hulynet, sys
sys.path.insert(0, sys.argv[1])
from helpers import Echo, TIMEOUTS
server = hulynet.Server(timeouts=TIMEOUTS)
host = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS); host.wait(timeout=5)
agent = hulynet.Agent([Echo]); host.serve_agent(agent)
user = hulynet.Client("127.0.0.1", server.port, timeouts=TIMEOUTS); user.wait(timeout=5)
reference = user.get("echo")
connection = reference.connect()
connection.on_event = print
hulynet.set_log_handler(lambda level, message: None, hulynet.LOG_TRACE)
assert connection.request("echo", 1) == 1
print("ok")
'''
    env = dict(os.environ, PYTHONPATH=str(BINDING))
    result = subprocess.run([sys.executable, "-c", program, str(pathlib.Path(__file__).parent)], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert "Traceback" not in result.stderr
