"""`qatdoctor explain` on realistic pasted text: the known-bad combinations of the evidence, and negatives."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import NamedTuple

import pytest
from packaging.specifiers import SpecifierSet

from qatdoctor.explain import explain_stream
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.records import Report, Status, Verdict, told

DATA = Path(__file__).resolve().parents[1] / "data" / "explain"
PIP = "python -m pip install"


class WholeSet(NamedTuple):
    """An expected version fix: a command installing a whole known-good set with `package` in `spec`."""

    package: str
    spec: str

    def found_in(self, report: Report, finding_id: str) -> bool:
        """The fix for `package` installs a release inside `spec` (or exactly the range), and names its set."""
        finding = next(f for f in report.findings if f.id == finding_id)
        for fix in finding.fixes:
            if fix.package != self.package or not fix.commands or not fix.lands_on:
                continue
            pins = dict(re.findall(r'"([\w-]+)(==[^"]+|[<>!~][^"]*)"', fix.commands[0]))
            pinned = pins.get(self.package, "")
            if pinned.startswith("=="):
                if SpecifierSet(self.spec).contains(pinned[2:].split("+")[0]):
                    return True
            elif pinned:  # a planned range: every real release it allows is inside the expected range
                allowed = [v for v in ("2.4.6", "2.0.2", "1.26.4", "1.24.4", "1.23.5", "1.21.6") if v in SpecifierSet(pinned)]
                if allowed and all(v in SpecifierSet(self.spec) for v in allowed):
                    return True
        return False


class NoSet(NamedTuple):
    """An expected version fix that no known-good set can carry here: no command, and it says so."""

    package: str
    spec: str

    def found_in(self, report: Report, finding_id: str) -> bool:
        finding = next(f for f in report.findings if f.id == finding_id)
        return any(
            fx.package == self.package and fx.spec == self.spec and not fx.commands and "no known-good set" in fx.summary
            for fx in finding.fixes
        )


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(None)


def explain(matrix: Matrix, name: str) -> Report:
    with (DATA / name).open("rb") as stream:
        return explain_stream(stream, matrix, target=name)


def versions(report: Report) -> dict[str, str]:
    return {k: v for k, v in (report.extracted or {}).items() if not k.endswith(".evidence")}


def commands(report: Report, finding_id: str) -> list[str]:
    finding = next(f for f in report.findings if f.id == finding_id)
    return [command for fix in finding.fixes for command in fix.commands]


# file, top finding (from the log), versions it must extract, commands the top finding's fixes must include
LOG_CASES = [
    pytest.param("issue-3152-native-bn-conda.md", "bn-subclass-qat-crash-v1",
                 {"aimet-torch": "1.32.2", "torch": "2.2.2", "cuda": "12.0", "python": "3.10.14", "glibc": "2.35"},
                 [WholeSet("aimet-torch", ">=2.30")], id="3152-native-bn-issue-conda-path"),
    pytest.param("native-bn-venv-2.0.0-v1.log", "bn-subclass-qat-crash-v1",
                 {"aimet-torch": "2.0.0", "aimet-api": "v1", "torch": "2.2.2+cu121", "python": "3.10"},
                 [WholeSet("aimet-torch", ">=2.30")], id="native-bn-venv-path-2.0.0-v1-freeze"),
    pytest.param("issue-ansi-crlf-wrapped.md", "bn-subclass-qat-crash-v1",
                 {"aimet-torch": "1.32.2", "torch": "2.2.2", "cuda": "12.1", "python": "3.10", "glibc": "2.35"},
                 [WholeSet("aimet-torch", ">=2.30")], id="native-bn-ansi-crlf-wrapped-quoted"),
    pytest.param("liblapacke-1.32.2-issue.md", "aimet-1x-liblapacke-missing",
                 {"aimet-torch": "1.32.2", "lib:liblapacke.so.3": "absent", "python": "3.9", "glibc": "2.31"},
                 ["sudo apt-get install -y liblapacke"], id="liblapacke-aimettensorquantizer"),
    pytest.param("glibc-2.32-aimet-1.32-github.txt", "aimet-1.31.2-1.32.1-cp310-glibc-below-2.34",
                 {"torch": "2.1.2+cu118", "python": "3.10", "glibc": "2.31"}, [], id="glibc-2.32-libpymo"),
    pytest.param("glibc-2.33-aimet-2.3.0-v1.txt", "aimet-v1-api-glibc-below-2.34",
                 {"aimet-torch": "2.3.0", "aimet-api": "v1", "torch": "2.1.0", "cuda": "12.1", "glibc": "2.31"},
                 ["unset AIMET_DEFAULT_API"], id="glibc-2.33-v1"),
    pytest.param("libcublas12-libpymo-2.2.txt", "aimet-2.0-2.3-libcublas12-missing",
                 {"aimet-torch": "2.2.0", "torch": "2.6.0+cu124", "lib:libcublas.so.12": "absent"},
                 [WholeSet("aimet-torch", ">=2.4")], id="libcublas12-libpymo"),
    pytest.param("v1-import-torch-mismatch-2.10.txt", "aimet-v1-api-torch-mismatch-2.1-2.24",
                 {"aimet-torch": "2.10.0", "aimet-api": "v1", "torch": "2.2.2+cu121"},
                 [WholeSet("torch", "==2.1.*")], id="v1-requires-torch-line"),
    pytest.param("v1-import-python-3.8.txt", "aimet-v1-api-python-not-3.10",
                 {"aimet-torch": "2.1.0", "aimet-api": "v1", "python": "3.8"}, [], id="v1-requires-python-line"),
    pytest.param("v1-python-and-torch-2.0.0-torch-2.14.txt", "aimet-v1-api-torch-mismatch-2.0.0",
                 {"aimet-torch": "2.0.0", "torch": "2.14.1+cu130", "python": "3.11"},
                 [NoSet("torch", "==2.2.*")], id="v1-requires-python-and-torch"),  # the v1 .so is cp310-only
    pytest.param("v1-cuda-mismatch-aimet-2.10.txt", "aimet-v1-api-cuda-major-mismatch",
                 {"aimet-torch": "2.10.0", "torch": "2.1.2+cu118"}, [], id="v1-requires-cuda-12"),
    pytest.param("v1-removed-aimet-2.31.txt", "aimet-v1-api-removed-2.30",
                 {"aimet-torch": "2.31.0", "aimet-api": "v1"}, [WholeSet("aimet-torch", "<2.30")], id="v1-removed-2.30"),
    pytest.param("undefined-symbol-aimet-1.22-torch-1.12.txt", "aimet-1.22-1.23-torch-abi-undefined-symbol",
                 {"aimet-torch": "1.22.2", "torch": "1.12.1", "python": "3.8"},
                 [NoSet("torch", "==1.9.1")], id="undefined-symbol-built-for-1.9.1"),  # outside the matrix
    pytest.param("pip-torch-1.9.1-cu111-not-found.txt", "aimet-github-wheel-local-torch-not-found",
                 {}, [], id="pip-torch-1.9.1+cu111-not-found"),
    pytest.param("pip-invalid-requirement-aimet-onnx-cu118.txt", "aimet-github-wheel-invalid-version-new-pip",
                 {"python": "3.10"}, ["python -m pip install pip==24.0"], id="pip-invalid-requirement-cu118"),
    pytest.param("numpy2-aimet-1.32.2.txt", "aimet-1x-numpy-2",
                 {"aimet-torch": "1.32.2", "torch": "2.2.2", "numpy": "2.2.6"},
                 [WholeSet("numpy", "<1.24")], id="numpy-1.x-module-under-numpy-2"),
    pytest.param("collect-env-2.42-torch-2.2-import.txt", "aimet-2.42-torch-2.2-import-error",
                 {"aimet-torch": "2.42.0", "torch": "2.2.2+cu121", "cuda": "12.1", "python": "3.10.12",
                  "glibc": "2.35", "driver": "535.104.05", "numpy": "1.26.4"},
                 [WholeSet("torch", ">=2.5.1")], id="detect-fake-mode-collect-env"),
    pytest.param("symbolic-caffe2-aimet-2.0.0-torch-2.14.txt", "aimet-2.0.0-torch-2.14-import-error",
                 {"aimet-torch": "2.0.0", "torch": "2.14.1+cu130", "python": "3.11"},
                 [WholeSet("torch", "==2.2.2"), WholeSet("aimet-torch", ">=2.42.0")], id="symbolic-caffe2"),
    pytest.param("ptrtoint64-aimet-onnx-and-torch.txt", "aimet-onnx-shared-aimet-common-before-2.20",
                 {"aimet-onnx": "2.8.0", "aimet-torch": "2.8.0", "torch": "2.1.2"},
                 [WholeSet("aimet-torch", ">=2.20")], id="ptrtoint64-onnx-and-torch"),
    pytest.param("gzeof-aimet-1.35.txt", "aimet-1.35-v1-undefined-symbol-gzeof",
                 {"aimet-torch": "1.35.0", "torch": "2.2.2", "python": "3.10"}, [], id="gzeof-1.35"),
    pytest.param("silu-aimet-2.0.0.txt", "silu-quantsim-valueerror-2.0.0",
                 {"aimet-torch": "2.0.0", "aimet-api": "v2", "torch": "2.2.2"},
                 [WholeSet("aimet-torch", ">=2.10.0"), "export AIMET_DEFAULT_API=v1"], id="silu-valueerror-2.0.0"),
    pytest.param("nonetype-detach-aimet-2.42.txt", "functional-bn-nostats-quantsim-attributeerror-v2",
                 {"aimet-torch": "2.42.0", "torch": "2.14.1", "python": "3.11"}, [], id="nonetype-detach"),
    pytest.param("unknown-module-aimet-2.42.txt", "bn-subclass-excluded-unknown-module-v2",
                 {"aimet-torch": "2.42.0", "mmengine": "0.10.7"}, [], id="unknown-module-error"),
    pytest.param("syncbn-cpu-torch-1.13.txt", "torch-1.13-syncbn-cpu-input",
                 {"torch": "1.13.1", "python": "3.8"}, [], id="syncbn-cpu-torch-1.13"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "top", "stated", "fix_commands"), LOG_CASES)
def test_log_case(
    matrix: Matrix, name: str, top: str, stated: dict[str, str], fix_commands: list[str | WholeSet | NoSet]
) -> None:
    report = explain(matrix, name)
    first = report.findings[0]
    assert (first.id, first.origin, first.status) == (top, "log", Status.FAIL)
    assert report.verdict is Verdict.PROBLEMS
    assert stated.items() <= versions(report).items()
    for expected in fix_commands:
        if isinstance(expected, WholeSet | NoSet):
            assert expected.found_in(report, top), commands(report, top)
        else:
            assert expected in commands(report, top), commands(report, top)
    assert any(line.startswith("line ") for line in first.evidence), "the matched log line is evidence"
    assert first.sources, "every matched known issue cites its sources"


def test_the_reporters_versions_pick_the_rule_and_its_fix(matrix: Matrix) -> None:
    """Same message, different versions: the rule (and fix) the stated versions allow wins."""
    cuda = explain(matrix, "v1-cuda-mismatch-aimet-2.10.txt")
    assert "aimet-v1-api-torch-mismatch-2.1-2.24" not in {f.id for f in cuda.findings}, "torch 2.1.2 is 2.1.*"
    libcublas = explain(matrix, "libcublas12-libpymo-2.2.txt")
    assert "aimet-1.32-1.35-libcublas12-unloadable" not in {f.id for f in libcublas.findings}, "2.2.0 is not 1.x"
    syncbn = explain(matrix, "syncbn-cpu-torch-1.13.txt")
    assert "torch-syncbn-cpu-input-with-process-group" not in {f.id for f in syncbn.findings}
    summary = told(explain(matrix, "issue-3152-native-bn-conda.md").findings[0])
    assert "aimet-torch 1.32.2 in >=1.26,<2.30" in summary, "the answer names the reporter's environment"


def test_strict_first_order(matrix: Matrix) -> None:
    """Type + text matches come before text-only and pattern matches."""
    report = explain(matrix, "v1-python-and-torch-2.0.0-torch-2.14.txt")
    logged = [f.id for f in report.findings if f.origin == "log"]
    assert logged == [
        "aimet-v1-api-torch-mismatch-2.0.0", "aimet-v1-api-python-not-3.10", "aimet-v1-api-cuda-major-mismatch",
    ]  # fmt: skip
    numpy = explain(matrix, "collect-env-2.42-torch-2.2-import.txt")
    assert numpy.findings[0].id == "aimet-2.42-torch-2.2-import-error"


def test_version_only_inputs_use_the_matrix(matrix: Matrix) -> None:
    """A pip list / pip freeze with no error: findings come from the versions (origin matrix), not the log."""
    pip_list = explain(matrix, "pip-list-aimet-2.42-torch-2.2.txt")
    assert pip_list.verdict is Verdict.PROBLEMS
    assert (pip_list.findings[0].id, pip_list.findings[0].origin) == ("aimet-2.42-torch-2.2-import-error", "matrix")
    assert not any(f.origin == "log" for f in pip_list.findings)
    assert pip_list.recommendations
    freeze = explain(matrix, "pip-freeze-aimet-1.32.2-numpy2.txt")
    assert versions(freeze) | {"aimet-torch": "1.32.2", "numpy": "2.0.2"} == versions(freeze)
    assert freeze.findings[0].id == "aimet-1x-numpy-2" and freeze.findings[0].origin == "matrix"
    good = explain(matrix, "collect-env-known-good-1.32.2.txt")
    assert good.verdict is Verdict.UNKNOWN, "a healthy-looking dump is not a diagnosis"
    assert not good.recommendations
    assert versions(good) == {
        "torch": "2.2.2+cu121", "cuda": "12.1", "glibc": "2.35", "python": "3.10.14", "driver": "535.171.04",
        "aimet-torch": "1.32.2", "numpy": "1.23.5", "torchvision": "0.17.2+cu121",
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("neg-cuda-oom.txt", id="cuda-oom"),
        pytest.param("neg-empty.txt", id="empty"),
        pytest.param("neg-long-build-log.txt", id="unrelated-build-log"),
    ],
)
def test_negatives_do_not_match(matrix: Matrix, name: str) -> None:
    report = explain(matrix, name)
    assert report.verdict is Verdict.UNKNOWN
    assert report.findings == ()
    assert report.recommendations == ()


def test_empty_input_says_so(matrix: Matrix) -> None:
    report = explain(matrix, "neg-empty.txt")
    assert report.notes == ("empty input: nothing to explain",)
    assert report.extracted == {}


def test_generic_message_without_aimet_is_not_blamed_on_aimet(matrix: Matrix) -> None:
    """`not enough values to unpack` in user code, no AIMET anywhere: shown as undecided, with no fix."""
    report = explain(matrix, "neg-unrelated-unpack-error.txt")
    (finding,) = report.findings
    assert (finding.id, finding.status, finding.fixes) == ("silu-quantsim-valueerror-2.0.0", Status.UNKNOWN, ())
    assert report.verdict is Verdict.UNKNOWN


def test_versions_outside_the_rules_range_give_no_fix(matrix: Matrix) -> None:
    text = b"aimet-torch 2.42.0\nRuntimeError: Unable to initialize class AimetTensorQuantizer: Cannot import " \
        b"AimetTensorQuantizer. Please build AimetTensorQuantizer and add artifact path to PYTHONPATH to resolve " \
        b"this issue\n"  # fmt: skip
    report = explain_stream(io.BytesIO(text), matrix, target="t")
    (finding,) = [f for f in report.findings if f.origin == "log"]
    assert finding.id == "aimet-1x-liblapacke-missing" and finding.status is Status.UNKNOWN
    assert "outside this rule's range" in told(finding) and finding.fixes == ()
    assert report.verdict is Verdict.UNKNOWN and not report.recommendations


def test_random_bytes_are_unknown_not_a_crash(matrix: Matrix) -> None:
    garbage = random.Random(7).randbytes(3 << 20)
    report = explain_stream(io.BytesIO(garbage), matrix, target="garbage")
    assert report.verdict is Verdict.UNKNOWN
    assert not [f for f in report.findings if f.origin == "log"]
    assert any("does not look like text" in note for note in report.notes)


def test_conflicting_versions_prefer_structured_sources(matrix: Matrix) -> None:
    text = b"I use torch 2.3.0 with aimet-torch 1.32.2.\n\nPackage  Version\ntorch    2.2.2\n"
    report = explain_stream(io.BytesIO(text), matrix, target="t")
    assert versions(report)["torch"] == "2.2.2"
    evidence = (report.extracted or {})["torch.evidence"]
    assert evidence.startswith("line 4 (package list)") and "also stated as 2.3.0 on line 1 (prose)" in evidence
    assert any(note.startswith("torch is stated with different values") for note in report.notes)
    assert report.facts.get("torch").detail == evidence
