"""`qatdoctor verify`: recorded facts and probe runs from real environments, fake builder/prober/collector."""

from __future__ import annotations

import json
import shutil
import urllib.error
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qatdoctor import core
from qatdoctor.cli import app
from qatdoctor.environment.probe import from_payload
from qatdoctor.environment.runner import Runner
from qatdoctor.exitcodes import ExitCode
from qatdoctor.jsonio import facts_from_dict, probe_from_dict
from qatdoctor.lab.cellplan import IndexUnreachableError, check_index
from qatdoctor.lab.cellrun import Tools
from qatdoctor.lab.envbuild import EnvSpec, InstallError, Log
from qatdoctor.lab.verify import VerifyOptions, run_verify
from qatdoctor.records import Facts, ModelSpec, ProbeRun
from qatdoctor.render import Format
from qatdoctor.render.verify import render, to_dict

DATA = Path(__file__).resolve().parents[1] / "data"
ORIGINAL = "/envs/aimet-1.32.2/bin/python"
# The user's model in these tests: a _BatchNormXd replica with SiLU next to a plain Conv-BN head.
MODEL = ModelSpec("tests/data/models/bn_subclass.py:build")


def recorded_facts(name: str) -> Facts:
    return facts_from_dict(json.loads((DATA / "verify" / f"{name}.facts.json").read_text()))


def recorded_probe(name: str, *, model: bool = False) -> ProbeRun:
    """A probe recorded in a real env: the stand-ins, or (model) the stand-ins plus MODEL's run."""
    if model:
        return from_payload(json.loads((DATA / "probe" / f"{name}.model-bn_subclass.json").read_text()))
    if (DATA / "verify" / f"{name}.probe.json").exists():
        probe = probe_from_dict(json.loads((DATA / "verify" / f"{name}.probe.json").read_text()))
        assert probe is not None
        return probe
    return from_payload(json.loads((DATA / "probe" / f"{name}.json").read_text()))


# What each built environment (by aimet-torch pin) looks like, recorded in the real envs.
BUILT = {
    "aimet-torch==2.0.0": "aimet-2.0.0-torch-2.2.2-py310",
    "aimet-torch==2.42.0": "aimet-2.42.0",
}


class Fakes:
    """A builder that makes an empty env dir, and a prober/collector answering from recorded runs."""

    def __init__(self, *, fail_build: Exception | None = None, fail_probe: BaseException | None = None) -> None:
        self.specs: list[EnvSpec] = []
        self.fail_build, self.fail_probe = fail_build, fail_probe
        self.built: dict[str, str] = {}

    def builder(
        self, spec: EnvSpec, root: Path, *, installer: str = "auto", runner: Runner | None = None, log: Log | None = None
    ) -> Path:
        self.specs.append(spec)
        if self.fail_build is not None:
            raise self.fail_build
        python = root / spec.name / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text("")
        self.built[str(python)] = BUILT[spec.requirements[0]]
        return python

    def prober(self, python: str, **kwargs: Any) -> ProbeRun:
        if self.fail_probe is not None:
            raise self.fail_probe
        name = "aimet-1.32.2" if python == ORIGINAL else self.built[python]
        return recorded_probe(name, model=kwargs.get("model") is not None)

    def collector(self, python: str | None = None, **kwargs: Any) -> Facts:
        return recorded_facts("aimet-1.32.2" if python == ORIGINAL else self.built[str(python)])

    def tools(self) -> Tools:
        return Tools(builder=self.builder, prober=self.prober, collector=self.collector)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _original_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("qatdoctor.lab.verify.resolve_python", lambda python: python or ORIGINAL)
    # The fake builder downloads nothing: whether the PyTorch index answers is tested on its own below.
    monkeypatch.setattr("qatdoctor.lab.verify.check_index", lambda url: None)


def options(tmp_path: Path, fakes: Fakes, *, model: ModelSpec | None = MODEL, **kw: Any) -> VerifyOptions:
    base = core.Options(python=ORIGINAL, model=model)
    return VerifyOptions(base=base, root=tmp_path, tools=fakes.tools(), installer="pip", **kw)


def test_newest_set_fixes_the_crash_and_leaves_the_bn_swap(tmp_path: Path) -> None:
    fakes = Fakes()
    result = run_verify(options(tmp_path, fakes))  # first version move: it adds no failure for this SiLU model
    assert result.recommendation is not None and "2.42.0" in result.recommendation.summary
    c = result.comparison
    assert "bn-subclass-qat-crash-v1" in {e.id for e in c.fixed}
    assert set(c.targeted) == {"bn-subclass-qat-crash-v1"}
    # The recommendation said the freeze would follow (model_failures): it remains, tied to the crash it replaces.
    frozen = next(e for e in c.remaining if e.id == "bn-subclass-stats-frozen-v2")
    assert frozen.was == ("bn-subclass-qat-crash-v1",) and frozen.note and "make_qat_safe" in frozen.note
    assert frozen.scope == "model" and not c.new_blocking and result.fixes and result.exit_code == 0
    # A measured landing first (2.42.0 + torch 2.10.0 on Python 3.10 was probed), whose PyPI build keeps the
    # environment's CUDA 12 (torch 2.2.2+cu121) — the driver is unknown here — exactly as the command prints it.
    spec = fakes.specs[0]
    assert spec.python == "3.10"
    assert spec.requirements[:3] == ("aimet-torch==2.42.0", "torch==2.10.0", "torchvision==0.25.0")
    command = result.recommendation.commands[0]
    assert '"torch==2.10.0"' in command and "--extra-index-url" not in command


def test_keep_torch_recommendation_trades_the_crash_for_the_silu_failure(tmp_path: Path) -> None:
    """Recorded in a throwaway env `qatdoctor verify --model … --pick 2` really built (aimet-torch 2.0.0)."""
    fakes = Fakes()
    result = run_verify(options(tmp_path, fakes, pick=2))
    assert result.recommendation is not None and "2.0.0" in result.recommendation.summary
    assert "silu-quantsim-valueerror-2.0.0" in result.recommendation.model_failures  # said before it was built
    # pip install of the recommendation keeps the installed numpy, so the throwaway env does too
    assert fakes.specs[0].requirements == ("aimet-torch==2.0.0", "torch==2.2.2", "torchvision==0.17.2", "numpy==1.23.5")
    c = result.comparison
    assert "bn-subclass-qat-crash-v1" in {e.id for e in c.fixed}
    silu = next(e for e in c.remaining if e.id == "silu-quantsim-valueerror-2.0.0")
    assert silu.scope == "model" and silu.note == "announced by the recommendation"
    assert not c.new_blocking and result.exit_code == 0


def test_without_a_model_a_known_good_environment_has_nothing_to_verify(tmp_path: Path) -> None:
    from qatdoctor.errors import InputError

    with pytest.raises(InputError, match="nothing to verify") as caught:
        run_verify(options(tmp_path, Fakes(), model=None))
    assert caught.value.hint is not None and "--model" in caught.value.hint


def test_builds_in_a_temp_dir_and_removes_it(tmp_path: Path) -> None:
    run_verify(options(tmp_path, Fakes()))
    assert list((tmp_path / "verify").iterdir()) == []


def test_keep_keeps_the_env(tmp_path: Path) -> None:
    result = run_verify(options(tmp_path, Fakes(), keep=True))
    assert result.run.kept is not None and (result.run.kept / "bin" / "python").exists()
    assert to_dict(result)["verify"]["env"]["kept"] == str(result.run.kept)


def test_interrupt_during_the_probe_removes_the_env(tmp_path: Path) -> None:
    fakes = Fakes()
    calls: list[str] = []

    def prober(python: str, **kwargs: Any) -> ProbeRun:
        calls.append(python)
        if python != ORIGINAL:
            raise KeyboardInterrupt
        return recorded_probe("aimet-1.32.2", model=True)

    tools = replace(fakes.tools(), prober=prober)  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        run_verify(replace(options(tmp_path, fakes), tools=tools))
    assert len(calls) == 2 and list((tmp_path / "verify").iterdir()) == []


def test_build_failure_is_exit_7_material(tmp_path: Path) -> None:
    fakes = Fakes(fail_build=InstallError("building x: uv install failed: No matching distribution found"))
    with pytest.raises(InstallError):
        run_verify(options(tmp_path, fakes))
    assert list((tmp_path / "verify").iterdir()) == []


def test_json_and_text_output(tmp_path: Path) -> None:
    result = run_verify(options(tmp_path, Fakes()))
    payload = to_dict(result)
    v = payload["verify"]
    assert payload["command"] == "verify" and v["result"] == "fixed" and v["mode"] == "recommendation"
    assert {"before", "after", "fixed", "remaining", "new", "env", "targeted"} <= set(v)
    assert v["env"]["installer"] == "pip" and v["env"]["kept"] is None
    assert v["before"]["versions"]["aimet-torch"] == "1.32.2" and v["after"]["versions"]["aimet-torch"] == "2.42.0"
    assert v["before"]["probe"]["cases"] and v["after"]["probe"]["cases"]
    text = render(result, Format.text)
    assert "FIXES what it targeted" in text and "probe: before → after" in text
    assert "fail → silent-fail" in text  # bn_subclass qat_step: the crash is gone, the stats are frozen
    assert "was: bn-subclass-qat-crash-v1" in text
    markdown = render(result, Format.markdown)
    assert "| model | mode |" in markdown and "fail → silent-fail" in markdown


def test_reproduce_builds_the_environments_own_set(tmp_path: Path) -> None:
    fakes = Fakes()
    fakes_builder = fakes.builder

    def builder(spec: EnvSpec, root: Path, **kw: Any) -> Path:
        spec = replace(spec, requirements=("aimet-torch==2.42.0", *spec.requirements))  # pose as a known env
        return fakes_builder(spec, root, **kw)

    tools = replace(fakes.tools(), builder=builder)  # type: ignore[arg-type]
    result = run_verify(replace(options(tmp_path, fakes), reproduce=True, tools=tools))
    assert result.recommendation is None and result.mode == "reproduce"
    assert fakes.specs[0].requirements[1:4] == ("aimet-torch==1.32.2", "torch==2.2.2", "torchvision==0.17.2")
    assert fakes.specs[0].system_libs == ("liblapacke.so.3",)
    assert result.exit_code == (1 if result.after.verdict.value == "problems" else 0)


def test_hypothetical_without_recommendation_reproduces_the_assumed_set(tmp_path: Path) -> None:
    fakes = Fakes()
    base = core.Options(assume=("aimet-torch=2.42.0", "torch=2.14.1", "python=3.11.7"))
    result = run_verify(VerifyOptions(base=base, root=tmp_path, tools=fakes.tools(), installer="pip"))
    assert result.hypothetical and result.recommendation is None
    assert fakes.specs[0].python == "3.11"
    assert fakes.specs[0].requirements[:3] == ("aimet-torch==2.42.0", "torch==2.14.1", "torchvision==0.29.1")
    assert result.before.probe is None and result.after.probe is not None


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


@pytest.mark.parametrize(
    ("assume", "message"),
    [
        pytest.param(["aimet-torch=1.32.2", "torch=2.2.2", "python=3.11.7"], "requires Python", id="wrong-python"),
        pytest.param(["aimet-torch=1.31.1", "torch=1.13.1", "python=3.10.13"], "has no wheel for Python 3.10",
                     id="no-wheel"),
        pytest.param(["aimet-torch=1.32.2", "torch=2.5.1", "python=3.10.13"], "requires torch==2.2.2",
                     id="exact-torch-pin"),
        pytest.param(["aimet-torch=2.42.0", "torch=2.15.0", "python=3.10.13"], "torch 2.15 has no wheel for Python 3.10",
                     id="torch-wheel"),
    ],
)  # fmt: skip
def test_uninstallable_sets_exit_7_with_the_reason(tmp_path: Path, assume: list[str], message: str) -> None:
    args = [a for item in assume for a in ("--assume", item)]
    result = invoke("verify", *args, "--reproduce", env={"QATDOCTOR_ENVS": str(tmp_path)})
    assert result.exit_code == ExitCode.ENV_BUILD_FAILED, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
    assert result.stdout == "" and not (tmp_path / "verify").exists()


def test_missing_interpreter_exits_7(tmp_path: Path) -> None:
    if shutil.which("python3.14") or list(Path.home().glob(".pyenv/versions/3.14*")):
        pytest.skip("this machine may have a Python 3.14")
    result = invoke(
        "verify", "-a", "aimet-torch=2.42.0", "-a", "torch=2.14.1", "-a", "python=3.14.0", "--reproduce",
        "--installer", "pip", env={"QATDOCTOR_ENVS": str(tmp_path)},
    )  # fmt: skip
    assert result.exit_code == ExitCode.ENV_BUILD_FAILED, result.stderr
    assert "no working Python 3.14 found" in result.stderr
    assert list((tmp_path / "verify").iterdir()) == []


def test_pick_out_of_range_is_bad_input(tmp_path: Path) -> None:
    from qatdoctor.errors import InputError

    with pytest.raises(InputError, match="--pick 9"):
        run_verify(options(tmp_path, Fakes(), pick=9))


def test_unreachable_index_is_an_env_build_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(IndexUnreachableError, match=r"download\.pytorch\.org/whl/cu118"):
        check_index("https://download.pytorch.org/whl/cu118")
    check_index(None)
