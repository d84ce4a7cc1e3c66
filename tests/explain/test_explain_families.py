"""Likely findings from the model a report names ([[model_family]]), and model-code errors ("not an environment
problem", with the user's own frame)."""

from __future__ import annotations

import io

import pytest

from qatdoctor.explain import explain_stream
from qatdoctor.knowledge.entries import Matrix
from qatdoctor.knowledge.load import load
from qatdoctor.records import Finding, Report, Scope, Status, Verdict, reason_text, told

# qualcomm/aimet#3152 as posted: the title, two screenshots, the versions (no traceback)
SEED = """Getting this error when I am trying to train RTM-det with QAT.
![image](https://github.com/quic/aimet/assets/172261954/d3663875-f1ba-40f8-94f4-6e75b0a4916f)

Steps I took to prepare for QAT:
![image](https://github.com/quic/aimet/assets/172261954/7242f6b6-35fe-4a9a-a94b-e2dae3892dc9)

**My package versions**
aimet-torch               1.32.2
torch                     2.2.2
with cuda 12.0
"""
NATIVE_BN = (
    "RuntimeError: The function 'native_batch_norm' is not differentiable with respect to argument "
    "'running_mean'. This input cannot have requires_grad True.\n"
)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(None)


def explain(matrix: Matrix, text: str) -> Report:
    return explain_stream(io.BytesIO(text.encode()), matrix, target="t")


def likely(report: Report) -> dict[str, Finding]:
    return {f.id: f for f in report.findings if f.likely is not None}


def test_the_seed_as_posted_gets_the_bn_subclass_crash_as_its_likely_cause(matrix: Matrix) -> None:
    report = explain(matrix, SEED)
    found = likely(report)
    assert list(found) == ["bn-subclass-qat-crash-v1"]
    finding = found["bn-subclass-qat-crash-v1"]
    assert finding.status is Status.UNKNOWN and finding.scope is Scope.CAVEAT, "likely, never FAIL"
    assert report.verdict is Verdict.UNKNOWN and not report.recommendations
    assert "line 1" in finding.likely and "rtm-det" in finding.likely and "_BatchNormXd" in finding.likely
    assert "model.eval() before prepare_model() does not avoid it" in finding.summary
    assert "qatdoctor check --model" in finding.summary
    assert any("make_qat_safe" in (fx.code or "") + fx.summary for fx in finding.fixes)
    assert not any("model.eval()" in fx.summary and "does not" not in fx.summary for fx in finding.fixes)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(SEED, {"bn-subclass-qat-crash-v1"}, id="seed"),
        # the same words on aimet-torch 2.42: the v2 QuantSim freezes the statistics instead of crashing
        pytest.param(SEED.replace("1.32.2", "2.42.0"), {"bn-subclass-stats-frozen-v2"}, id="seed-on-2.42"),
        pytest.param(SEED.replace("RTM-det", "my resnet"), set(), id="no-family-named"),
        pytest.param(SEED.replace("aimet-torch               1.32.2\n", ""), set(), id="aimet-version-not-stated"),
        pytest.param("RTMDet with aimet-torch 1.32.2 gives lower mAP than the float model.\n", set(),
                     id="accuracy-question-no-failure-words"),
        pytest.param("Does aimet-torch 1.32.2 support RTMDet? Any plan for mmdet 3?\n", set(), id="support-question"),
        pytest.param("QAT of a timm efficientnet_b0 fails with an error, aimet-torch 1.32.2\n",
                     {"bn-subclass-qat-crash-v1"}, id="timm-norm-act"),
        # a matched error decides: the family adds nothing on top of it
        pytest.param(SEED + NATIVE_BN, set(), id="matched-error-decides"),
    ],
)  # fmt: skip
def test_likely_findings_need_a_family_a_failure_and_the_versions(
    matrix: Matrix, text: str, expected: set[str]
) -> None:
    assert set(likely(explain(matrix, text))) == expected


def test_the_family_table_is_what_decides(matrix: Matrix) -> None:
    """Without [[model_family]] the seed decides nothing; a family whose words differ does not match it."""
    assert not likely(explain(matrix._replace(model_families=()), SEED))
    renamed = tuple(f._replace(words=("yolov9000",)) for f in matrix.model_families)
    assert not likely(explain(matrix._replace(model_families=renamed), SEED))


TRACE_FX = """Traceback (most recent call last):
  File "/home/me/project/train_qat.py", line 41, in <module>
    prepared = prepare_model(model)
  File "/opt/venv/lib/python3.10/site-packages/aimet_torch/model_preparer.py", line 225, in prepare_model
    traced_model, node_name_to_scope = _trace_model(model, modules_to_exclude, module_classes_to_exclude, concrete_args)
  File "/home/me/project/models/head.py", line 88, in forward
    if x.sum() > 0:
  File "/opt/venv/lib/python3.10/site-packages/torch/fx/proxy.py", line 422, in __bool__
    return self.tracer.to_bool(self)
torch.fx.proxy.TraceError: symbolically traced variables cannot be used as inputs to control flow
aimet-torch 2.42.0, torch 2.14.1
"""


@pytest.mark.parametrize(
    ("text", "rule", "frame"),
    [
        pytest.param(TRACE_FX, "torch-fx-trace-control-flow", 'File "/home/me/project/models/head.py", line 88, in forward',
                     id="fx-control-flow"),
        pytest.param("TraceError: Proxy object cannot be iterated. This can be attempted when the Proxy is used in a "
                     "loop\naimet-torch 1.32.2, torch 2.2.2\n", "torch-fx-proxy-iteration", None, id="fx-proxy-iteration"),
    ],
)  # fmt: skip
def test_model_code_errors_are_not_environment_problems(
    matrix: Matrix, text: str, rule: str, frame: str | None
) -> None:
    report = explain(matrix, text)
    first = report.findings[0]
    assert (first.id, first.status, first.scope) == (rule, Status.FAIL, Scope.MODEL)
    said = told(first)
    assert reason_text(first.reasons[1]).startswith("Not an environment or version problem"), first.reasons
    assert report.verdict is Verdict.PROBLEMS
    assert first.fixes and all(fx.package is None and fx.kind == "code" for fx in first.fixes), "no version move"
    if frame is None:
        assert "raised from your code" not in said
    else:
        assert f"It is raised from your code: {frame}" in said
        assert any(frame in line for line in first.evidence)
