"""The collector script itself: stdlib only, runs under Python 3.8+, one JSON object, nothing identifying."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.environment import _collector as collector
from qatdoctor.environment.collect import collector_path
from qatdoctor.environment.prefetch import collector_argv
from qatdoctor.knowledge.load import checked_libraries, default_path
from qatdoctor.knowledge.vocab import PACKAGES, collector_request

PYTHON38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")
LIBRARIES = checked_libraries(default_path())  # what qatdoctor asks the collector to find (the matrix's)
REQUEST = collector_request(LIBRARIES)
SHAPE = {
    "collector": None,
    "python": {"version", "implementation", "soabi", "executable", "prefix", "venv", "dists"},
    "platform": {"system", "machine", "os", "glibc"},
    "packages": set(PACKAGES),
    "torch_build": {"cuda", "hip", "version", "source"},
    "aimet_build": {"torch", "python_abi", "source"},
    "nvidia": {"driver", "driver_source", "gpus"},
    "libraries": set(LIBRARIES),
    "env": set(collector.ENV_VARS),
    "unknown": None,
}
UUID = "GPU-8f3a2b1c-1234-5678-9abc-def012345678"


def interpreters() -> list[Any]:
    reason = f"{PYTHON38} is not installed (pyenv install 3.8.18)"
    return [
        pytest.param(sys.executable, id="dev-venv"),
        pytest.param(str(PYTHON38), id="python-3.8", marks=pytest.mark.skipif(not PYTHON38.exists(), reason=reason)),
    ]


def run_collector(
    python: str, *, script: Path | None = None, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    """Run the script as qatdoctor does; return the parsed object and the raw stdout."""
    proc = subprocess.run(
        [python, str(script or collector_path()), *collector_argv(python, REQUEST)[2:]],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1, "exactly one line of output"
    payload: dict[str, Any] = json.loads(proc.stdout)
    return payload, proc.stdout


def test_the_script_imports_only_the_standard_library() -> None:
    tree = ast.parse(collector_path().read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the script runs on its own"
            imported.add((node.module or "").split(".")[0])
    assert imported, "the walk found the imports"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)


@pytest.mark.parametrize("python", interpreters())
def test_real_run_has_the_documented_shape(python: str) -> None:
    payload, _ = run_collector(python)
    assert set(payload) == set(SHAPE)
    for section, keys in SHAPE.items():
        if keys is not None and payload[section] is not None:
            assert set(payload[section]) == keys, section
    assert payload["collector"] == 1
    assert isinstance(payload["unknown"], dict)
    assert payload["python"]["version"].startswith(("3.8.", "3.1"))


@pytest.mark.parametrize("python", interpreters())
def test_real_run_leaks_neither_home_nor_host_name(python: str) -> None:
    _, raw = run_collector(python, env={"AIMET_DEFAULT_API": f"{os.uname().nodename}:{UUID}"})
    home = str(Path.home())
    assert not re.search(re.escape(home) + r"(?![\w.-])", raw)
    host = os.uname().nodename
    assert not re.search(r"(?<![A-Za-z0-9-])" + re.escape(host) + r"(?![A-Za-z0-9-])", raw, re.I)
    assert UUID not in raw
    assert json.loads(raw)["env"]["AIMET_DEFAULT_API"] == "<host>:<gpu-uuid>"


def test_home_is_replaced_even_for_a_venv_inside_it(tmp_path: Path) -> None:
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    payload, _ = run_collector(str(tmp_path / "venv" / "bin" / "python"), env={"HOME": str(tmp_path)})
    assert payload["python"]["executable"] == "~/venv/bin/python"


def fake_site(root: Path, *, torch_version_py: str) -> Path:
    """A site directory with metadata for some packages, torch/aimet files to read, and booby-trapped inits."""
    site = root / "site"
    for dist, version in (("torch", "2.2.2+cu121"), ("aimet_torch", "2.0.0"), ("mmcv_lite", "2.0.1")):
        info = site / f"{dist}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    for package in ("torch", "aimet_torch", "aimet_common"):
        (site / package).mkdir(parents=True, exist_ok=True)
        (site / package / "__init__.py").write_text("raise SystemExit('imported!')\n", encoding="utf-8")
    (site / "torch" / "version.py").write_text(torch_version_py, encoding="utf-8")
    (site / "aimet_common" / "_deps.py").write_text(
        "python_abi = 'cpython-310-x86_64-linux-gnu'\ntorch = '2.2.0+cu121'\n", encoding="utf-8"
    )
    (site / "nvidia" / "cublas" / "lib").mkdir(parents=True)
    (site / "nvidia" / "cublas" / "lib" / "libcublas.so.12").write_bytes(b"")
    return site


TORCH_22 = "from typing import Optional\n__version__ = '2.2.2+cu121'\ncuda: Optional[str] = '12.1'\nhip = None\n"


@pytest.mark.parametrize(
    ("dists", "mmcv"),
    [
        ({"mmcv_lite": "2.1.0"}, "2.1.0"),
        ({"mmcv": "2.2.0", "mmcv_lite": "2.1.0"}, "2.2.0"),
        ({"mmcv": "1.7.2"}, "1.7.2"),
        ({"mmengine": "0.10.7"}, None),
    ],
)
def test_mmcv_lite_counts_as_mmcv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dists: dict[str, str], mmcv: str | None
) -> None:
    for dist, version in dists.items():
        (tmp_path / f"{dist}-{version}.dist-info").mkdir()
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    packages = collector.probe_packages({}, list(PACKAGES))
    assert packages["mmcv"] == mmcv
    assert packages["mmcv-lite"] == dists.get("mmcv_lite")


@pytest.mark.parametrize("python", interpreters())
def test_packages_and_builds_are_read_without_importing_them(python: str, tmp_path: Path) -> None:
    site = fake_site(tmp_path, torch_version_py=TORCH_22)
    payload, _ = run_collector(python, env={"PYTHONPATH": str(site)})
    assert payload["packages"]["torch"] == "2.2.2+cu121"
    assert payload["packages"]["aimet-torch"] == "2.0.0"
    assert payload["packages"]["mmcv-lite"] == "2.0.1"
    assert payload["packages"]["mmcv"] == "2.0.1"  # mmcv-lite provides the mmcv package
    assert payload["packages"]["onnx"] is None
    assert payload["torch_build"] == {
        "cuda": "12.1",
        "hip": None,
        "version": "2.2.2+cu121",
        "source": "torch/version.py",
    }
    assert payload["aimet_build"] == {
        "torch": "2.2.0+cu121",
        "python_abi": "cpython-310-x86_64-linux-gnu",
        "source": "aimet_common/_deps.py",
    }
    assert payload["libraries"]["libcublas.so.12"]["found"] is True


@pytest.mark.parametrize(
    ("version_py", "cuda"),
    [
        pytest.param("cuda: Optional[str] = '12.1'\n", "12.1", id="annotated"),
        pytest.param('cuda = "11.7"\nhip = None\n', "11.7", id="old-style"),
        pytest.param("cuda: Optional[str] = None\n", None, id="cpu-build"),
    ],
)
def test_torch_cuda_build_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version_py: str, cuda: str) -> None:
    site = fake_site(tmp_path, torch_version_py=version_py)
    monkeypatch.syspath_prepend(str(site))
    unknown: dict[str, str] = {}
    assert collector.probe_torch_build(unknown, True)["cuda"] == cuda
    assert unknown == {}


def test_torch_version_py_without_cuda_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(fake_site(tmp_path, torch_version_py="__version__ = '2.2.2'\n")))
    unknown: dict[str, str] = {}
    assert collector.probe_torch_build(unknown, True)["cuda"] is None
    assert unknown == {"torch_build.cuda": "torch/version.py has no cuda entry"}


def test_nothing_beside_the_script_can_shadow_the_stdlib(tmp_path: Path) -> None:
    script = tmp_path / "_collector.py"
    shutil.copy(collector_path(), script)
    for name in ("json", "subprocess", "contextlib", "platform"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('shadowed!')\n", encoding="utf-8")
    payload, _ = run_collector(sys.executable, script=script)
    assert payload["collector"] == 1


# --- NVIDIA detection, in-process with a fake nvidia-smi and fake driver files -------------------------


def fake_tool(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / name
    tool.write_text("#!/bin/sh\nPATH=/usr/local/bin:/usr/bin:/bin\n" + script, encoding="utf-8")
    tool.chmod(0o755)
    return tool


@pytest.fixture
def no_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No driver files, and PATH holds only an empty bin directory (fake tools go there)."""
    monkeypatch.setattr(collector, "DRIVER_FILES", (str(tmp_path / "absent-sys"), str(tmp_path / "absent-proc")))
    monkeypatch.setattr(collector, "NVIDIA_SMI_FALLBACKS", ())
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path / "bin"


SMI_H100 = 'echo "NVIDIA H100 80GB HBM3, 9.0, 535.104.05"\n'


@pytest.mark.parametrize(
    ("smi", "proc_version", "expected", "unknown"),
    [
        pytest.param(None, None, {"driver": None, "driver_source": "none", "gpus": []}, {}, id="no-driver-at-all"),
        pytest.param(
            SMI_H100,
            None,
            {
                "driver": "535.104.05",
                "driver_source": "nvidia-smi",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
            },
            {},
            id="nvidia-smi-only",
        ),
        pytest.param(
            SMI_H100,
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n",
            {
                "driver": "535.104.05",
                "driver_source": "proc",
                "gpus": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}],
            },
            {},
            id="proc-file-and-nvidia-smi",
        ),
        pytest.param(
            None,
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.14  Release Build  (dvs-builder)\n",
            {"driver": "550.54.14", "driver_source": "proc", "gpus": None},
            {"nvidia.gpus": "nvidia-smi not found"},
            id="open-kernel-module-without-nvidia-smi",
        ),
        pytest.param(
            'echo "No devices were found"; exit 6\n',
            None,
            {"driver": None, "driver_source": "none", "gpus": []},
            {},
            id="no-devices",
        ),
        pytest.param(
            'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."; exit 9\n',
            None,
            {"driver": None, "driver_source": None, "gpus": None},
            {
                "nvidia.gpus": "nvidia-smi failed (exit status 9): NVIDIA-SMI has failed because it "
                "couldn't communicate with the NVIDIA driver.",
                "nvidia.driver": "nvidia-smi failed (exit status 9): NVIDIA-SMI has failed because it "
                "couldn't communicate with the NVIDIA driver.",
            },
            id="driver-not-loaded",
        ),
        pytest.param(
            'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to query.\'; exit 2;; esac\n'
            'echo "Tesla V100-SXM2-16GB, 470.57.02"\n',
            None,
            {
                "driver": "470.57.02",
                "driver_source": "nvidia-smi",
                "gpus": [{"name": "Tesla V100-SXM2-16GB", "compute_capability": None}],
            },
            {},
            id="old-driver-without-compute-cap",
        ),
    ],
)
def test_nvidia_detection(
    no_driver: Path,
    smi: str | None,
    proc_version: str | None,
    expected: dict[str, Any],
    unknown: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if smi is not None:
        fake_tool(no_driver, "nvidia-smi", smi)
    if proc_version is not None:
        proc = no_driver.parent / "proc"
        proc.write_text(proc_version, encoding="utf-8")
        monkeypatch.setattr(collector, "DRIVER_FILES", (str(no_driver.parent / "absent-sys"), str(proc)))
        expected = {**expected, "driver_source": str(proc)}
    found: dict[str, str] = {}
    assert collector.probe_nvidia(found) == expected
    assert found == unknown


def test_hanging_nvidia_smi_is_cut_off(no_driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_tool(no_driver, "nvidia-smi", "exec sleep 30\n")
    monkeypatch.setattr(collector, "NVIDIA_SMI_TIMEOUT", 0.3)
    unknown: dict[str, str] = {}
    assert collector.probe_nvidia(unknown) == {"driver": None, "driver_source": None, "gpus": None}
    assert unknown == {
        "nvidia.gpus": "nvidia-smi timed out after 0.3s",
        "nvidia.driver": "nvidia-smi timed out after 0.3s",
    }


def test_nvidia_smi_is_never_asked_for_identifiers(no_driver: Path) -> None:
    log = no_driver.parent / "argv.log"
    fake_tool(no_driver, "nvidia-smi", f'echo "$@" >> {log}\n' + SMI_H100)
    collector.probe_nvidia({})
    asked = log.read_text(encoding="utf-8")
    assert "--query-gpu=name,compute_cap,driver_version" in asked
    assert not re.search(r"uuid|serial|bus|pci|-L\b|-q\b", asked, re.I)


# --- shared libraries, in-process with a fake ldconfig ---------------------------------------------------


LDCONFIG_OUT = (
    "3 libs found in cache `/etc/ld.so.cache'\n"
    "\tliblapacke.so.3 (libc6) => /usr/lib/i386-linux-gnu/liblapacke.so.3\n"
    "\tliblapacke.so.3 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/liblapacke.so.3\n"
    "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n"
)


def test_libraries_from_the_loader_cache_and_ld_library_path(
    no_driver: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ldconfig = fake_tool(no_driver, "ldconfig", f"cat <<'EOF'\n{LDCONFIG_OUT}EOF\n")
    monkeypatch.setattr(collector, "LDCONFIGS", (str(ldconfig),))
    cuda_lib = tmp_path / "cuda" / "lib64"
    cuda_lib.mkdir(parents=True)
    (cuda_lib / "libcublas.so.12").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", f":{cuda_lib}")
    unknown: dict[str, str] = {}
    assert collector.probe_libraries(unknown, "x86_64", ["liblapacke.so.3", "libcublas.so.12"]) == {
        "liblapacke.so.3": {"found": True, "where": "/usr/lib/x86_64-linux-gnu/liblapacke.so.3"},
        "libcublas.so.12": {"found": True, "where": str(cuda_lib / "libcublas.so.12")},
    }
    assert unknown == {}


def test_32_bit_only_library_does_not_count(no_driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only_i386 = "\tliblapacke.so.3 (libc6) => /usr/lib/i386-linux-gnu/liblapacke.so.3\n"
    monkeypatch.setattr(collector, "LDCONFIGS", (str(fake_tool(no_driver, "ldconfig", f"printf '{only_i386}'\n")),))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.setattr(collector, "nvidia_wheel_lib", lambda soname: None)
    unknown: dict[str, str] = {}
    assert collector.probe_libraries(unknown, "x86_64", ["liblapacke.so.3"])["liblapacke.so.3"] == {
        "found": False,
        "where": None,
    }


def test_without_a_loader_cache_a_missing_library_is_unknown(no_driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "LDCONFIGS", ())
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    monkeypatch.setattr(collector, "nvidia_wheel_lib", lambda soname: None)
    unknown: dict[str, str] = {}
    result = collector.probe_libraries(unknown, "no-such-machine", ["libcublas.so.12"])
    assert result["libcublas.so.12"] is None
    assert unknown["libraries.libcublas.so.12"].startswith("ldconfig not found; not in LD_LIBRARY_PATH")


# --- redaction ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "redacted"),
    [
        pytest.param("/home/alice/venv/bin/python", "python.executable", "~/venv/bin/python", id="home-prefix"),
        pytest.param("/home/alice", "python.prefix", "~", id="home-itself"),
        pytest.param("/home/alice2/venv", "python.prefix", "/home/alice2/venv", id="other-user"),
        pytest.param("/data/home/alice/x", "python.prefix", "/data/home/alice/x", id="not-a-prefix"),
        pytest.param(
            "nvidia-smi: ubuntu.lan unreachable", "unknown.nvidia.gpus", "nvidia-smi: <host> unreachable", id="fqdn"
        ),
        pytest.param("ssh ubuntu:22", "env.AIMET_DEFAULT_API", "ssh <host>:22", id="short-host"),
        pytest.param("Ubuntu 22.04.4 LTS", "platform.os", "Ubuntu 22.04.4 LTS", id="os-name-is-vocabulary"),
        pytest.param("ubuntu-builder", "unknown.x", "ubuntu-builder", id="host-inside-a-word"),
        pytest.param(UUID, "env.CUDA_VISIBLE_DEVICES", "<gpu-uuid>", id="gpu-uuid"),
        pytest.param("GPU-8f3a2b1c,1", "env.CUDA_VISIBLE_DEVICES", "<gpu-uuid>,1", id="short-uuid-prefix"),
        pytest.param("MIG-GPU-8f3a2b1c-1234-5678-9abc-def012345678/1/0", "unknown.x", "<gpu-uuid>", id="old-mig"),
        pytest.param("MIG-8f3a2b1c-1234-5678-9abc-def012345678", "unknown.x", "<gpu-uuid>", id="mig"),
        pytest.param("GPU-accelerated", "unknown.x", "GPU-accelerated", id="not-a-uuid"),
    ],
)
def test_redactor(value: str, path: str, redacted: str) -> None:
    redactor = collector.Redactor(["/home/alice"], ["ubuntu.lan", "ubuntu"])
    assert redactor.text(value, path) == redacted


def test_redactor_walks_nested_values_but_keeps_keys() -> None:
    redactor = collector.Redactor(["/home/alice"], ["ubuntu"])
    walked = redactor.walk({"nvidia": {"gpus": [{"name": "ubuntu GPU"}]}, "env": {"ubuntu": "ubuntu"}, "n": 1})
    assert walked == {"nvidia": {"gpus": [{"name": "ubuntu GPU"}]}, "env": {"ubuntu": "<host>"}, "n": 1}
