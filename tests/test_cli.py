"""The CLI end to end: exit codes, pure-JSON stdout, messages on stderr, files written only when asked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qatdoctor import __version__
from qatdoctor.cli import app, main
from qatdoctor.exitcodes import ExitCode

runner = CliRunner()
SUPPORT = ["-a", "aimet-torch=1.32.2", "-a", "torch=2.2.2", "-a", "cuda=12.0"]


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"qatdoctor {__version__}"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--version"], ExitCode.OK),
        (["resolve", "--no-such-option"], ExitCode.USAGE),
        (["resolve", "--strict", *SUPPORT, "-a", "python=3.10", "-f", "json"], None),
        (["resolve", "-a", "torch=not-a-version"], ExitCode.BAD_INPUT),
    ],
)  # fmt: skip
def test_main_returns_the_exit_code(argv: list[str], code: ExitCode | None, capsys: pytest.CaptureFixture[str]) -> None:
    returned = main(argv)
    if code is None:  # the verdict decides: the code must be the one the JSON's verdict maps to
        verdict = json.loads(capsys.readouterr().out)["verdict"]
        code = {"ok": ExitCode.OK, "problems": ExitCode.PROBLEMS, "unknown": ExitCode.UNKNOWN}[verdict]
    assert returned == int(code)


def test_python_dash_m_entry_point() -> None:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "qatdoctor", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and __version__ in done.stdout


def test_resolve_json_is_the_only_stdout() -> None:
    result = invoke("resolve", *SUPPORT, "--format", "json")
    payload = json.loads(result.stdout)
    assert payload["schema_version"] == 1
    assert payload["verdict"] in ("ok", "problems", "unknown")
    assert {"id", "title", "severity", "summary", "fixes", "sources"} <= set(payload["findings"][0])
    crash = next(f for f in payload["findings"] if f["id"] == "bn-subclass-qat-crash-v1")
    assert crash["scope"] == "caveat" and crash["construct"] == "bn-subclass" and crash["status"] != "fail"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        pytest.param(["resolve", *SUPPORT], ExitCode.OK, id="unknown-without-strict-is-0"),
        pytest.param(["resolve", *SUPPORT, "--strict"], ExitCode.UNKNOWN, id="unknown-with-strict-is-3"),
        pytest.param(["resolve", "-a", "aimet-torch=2.42.0", "-a", "torch=2.2.2"], ExitCode.PROBLEMS, id="problems-is-1"),
        pytest.param(["resolve", "--format", "yaml", *SUPPORT], ExitCode.USAGE, id="bad-format-is-2"),
        pytest.param(["resolve"], ExitCode.BAD_INPUT, id="resolve-needs-assumptions"),
        pytest.param(["resolve", "-a", "torch=latest"], ExitCode.BAD_INPUT, id="garbage-version-is-6"),
        pytest.param(["resolve", "-a", "pytorch=2.2.2"], ExitCode.BAD_INPUT, id="unknown-fact-is-6"),
        pytest.param(["check", "--no-probe", "--python", "/nonexistent/python"], ExitCode.TARGET_UNUSABLE,
                     id="missing-interpreter-is-5"),
        pytest.param(["check", "--no-probe", "--python", "/bin/echo"], ExitCode.TARGET_UNUSABLE, id="not-python-is-5"),
        pytest.param(["matrix", "show", "no-such-rule"], ExitCode.BAD_INPUT, id="unknown-matrix-entry"),
    ],
)  # fmt: skip
def test_exit_codes(args: list[str], code: ExitCode) -> None:
    result = invoke(*args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    if code in (ExitCode.BAD_INPUT, ExitCode.TARGET_UNUSABLE):
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_invalid_matrix_is_4_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text('schema_version = 1\nmatrix_version = "x"\nupdated = 2026-01-01\n[[rule]]\nid = "x"\n')
    result = invoke("resolve", *SUPPORT, "--matrix", str(bad))
    assert result.exit_code == ExitCode.MATRIX_INVALID
    assert "rule 'x' → kind: required field is missing" in result.stderr
    assert invoke("matrix", "validate", str(bad)).exit_code == ExitCode.MATRIX_INVALID


def test_matrix_env_var_is_honoured(tmp_path: Path) -> None:
    result = invoke("resolve", *SUPPORT, env={"QATDOCTOR_MATRIX": str(tmp_path / "missing.toml")})
    assert result.exit_code == ExitCode.MATRIX_INVALID and "file not found" in result.stderr


def test_check_this_interpreter_without_aimet_is_a_plain_problem_with_the_install() -> None:
    result = invoke("check", "--no-probe", "--format", "json")
    payload = json.loads(result.stdout)
    assert result.exit_code == ExitCode.PROBLEMS and payload["verdict"] == "problems"
    missing = next(f for f in payload["findings"] if f["id"] == "env.aimet-torch-missing")
    assert missing["status"] == "fail" and "aimet-torch==" in missing["fixes"][0]["commands"][0]
    assert "probe skipped" in " ".join(payload["notes"])
    assert "@qatdoctor-probe" not in result.stdout + result.stderr


def test_shipped_matrix_validates_and_lists() -> None:
    result = invoke("matrix", "validate")
    assert result.exit_code == 0 and ": OK" in result.stdout
    rules = json.loads(invoke("matrix", "list", "--format", "json").stdout)
    assert any(r["id"] == "bn-subclass-qat-crash-v1" for r in rules)
    shown = invoke("matrix", "show", "bn-subclass-qat-crash-v1").stdout
    assert "https://github.com/qualcomm/aimet/issues/3152" in shown
    assert json.loads(invoke("matrix", "show", "1.32.2").stdout)["version"]


def test_pin_writes_only_the_file_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "constraints.txt"
    before = {p.name for p in tmp_path.iterdir()}
    result = invoke("pin", *SUPPORT[:4], "-a", "python=3.10.13", "--output", str(target))
    assert result.exit_code == 0, result.stderr
    assert {p.name for p in tmp_path.iterdir()} - before == {"constraints.txt"}
    lines = [line for line in target.read_text().splitlines() if not line.startswith("#")]
    assert "aimet-torch==1.32.2" in lines and any(line.startswith("torch==") for line in lines)
    assert result.stdout == ""


def test_pin_fresh_picks_a_known_good_set_for_this_python() -> None:
    result = invoke("pin", "--fresh")
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("aimet-torch==") for line in lines)
    assert "# known-good:" in result.stdout


def test_pin_into_unwritable_location_is_bad_input(tmp_path: Path) -> None:
    result = invoke("pin", "--fresh", "--output", str(tmp_path / "no" / "such" / "dir" / "c.txt"))
    assert result.exit_code == ExitCode.BAD_INPUT and "cannot write" in result.stderr


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("train/model.py:build_model", True),
        ("mypkg.models:build", True),
        ("torchvision:resnet18", True),
        ("mmdet:rtmdet_tiny_8xb32-300e_coco", True),  # a config name is no identifier: only a known family takes it
        ("ultralytics:yolov8n.yaml", True),
        ("mypkg:rtmdet-tiny", False),
        ("torchvision:", False),
        ("resnet18", False),
    ],
)
def test_model_specs_by_file_module_or_family_name(spec: str, ok: bool) -> None:
    from qatdoctor.cli import model_spec
    from qatdoctor.errors import InputError

    if ok:
        model = model_spec(spec, None, False)
        assert model is not None and model.spec == spec
    else:
        with pytest.raises(InputError, match="FAMILY:NAME"):
            model_spec(spec, None, False)
