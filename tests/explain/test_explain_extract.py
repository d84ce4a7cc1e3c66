"""Reading the versions a pasted text states: package tables, collect_env, error messages, paths and prose."""

from __future__ import annotations

import pytest

from qatdoctor.explain.diagnosis import choose
from qatdoctor.explain.extract import INFERRED, PROSE, STRUCTURED, VersionExtractor


def extract(text: str, *, head: int = 16 << 20, tail: int = 1 << 20, piece: int = 0) -> VersionExtractor:
    extractor = VersionExtractor(head=head, tail=tail)
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)] if piece else [text]
    for part in pieces:
        extractor.feed(part)
    extractor.finish()
    return extractor


def stated(text: str) -> dict[str, str]:
    return {name: pick.statement.value for name, pick in choose(extract(text).statements).items()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Package    Version\n---------- -------\naimet-torch 1.32.2\ntorch      2.2.2+cu121\n",
                     {"aimet-torch": "1.32.2", "torch": "2.2.2+cu121"}, id="pip-list"),
        pytest.param("aimet-torch 2.10.0 /home/u/src/aimet\n", {"aimet-torch": "2.10.0"}, id="pip-list-editable"),
        pytest.param("aimet_torch==1.32.2\ntorch==2.2.2\nnumpy==1.23.5\n",
                     {"aimet-torch": "1.32.2", "torch": "2.2.2", "numpy": "1.23.5"}, id="pip-freeze"),
        pytest.param("aimet-torch @ file:///tmp/w/aimet_torch-1.32.2-cp310-cp310-manylinux_2_34_x86_64.whl\n",
                     {"aimet-torch": "1.32.2"}, id="pip-freeze-wheel-url"),
        pytest.param("aimet-torch @ https://github.com/quic/aimet/releases/download/1.31.0/"
                     "aimet_torch-torch_gpu_1.31.0-cp38-cp38-linux_x86_64.whl\n",
                     {"aimet-torch": "torch_gpu_1.31.0"}, id="pip-freeze-github-variant"),
        pytest.param("aimet-torch==1.34.0.cu121\n", {"aimet-torch": "1.34.0.cu121"}, id="github-cu-variant"),
        pytest.param("# Name      Version   Build    Channel\npytorch   2.2.2   py3.10_cuda12.1_cudnn8.9.2_0   pytorch\n"
                     "pytorch-cuda 12.1  ha16c6d3_5  pytorch\npython    3.10.14  h955ad1f_0\n",
                     {"torch": "2.2.2", "cuda": "12.1", "python": "3.10.14"}, id="conda-list"),
        pytest.param("PyTorch version: 2.3.0a0+git1234\nCUDA used to build PyTorch: 12.1\n"
                     "OS: Ubuntu 22.04.4 LTS (x86_64)\nLibc version: glibc-2.35\n"
                     "Python version: 3.10.14 (main, Mar 21 2024, 16:24:04) [GCC 11.2.0] (64-bit runtime)\n"
                     "Nvidia driver version: 535.104.05\n[pip3] numpy==1.26.4\n[conda] torchvision 0.17.2 pypi_0 pypi\n",
                     {"torch": "2.3.0a0+git1234", "cuda": "12.1", "glibc": "2.35", "python": "3.10.14",
                      "driver": "535.104.05", "numpy": "1.26.4", "torchvision": "0.17.2"}, id="collect-env"),
        pytest.param("CUDA used to build PyTorch: Could not collect\nPyTorch version: N/A\n", {}, id="collect-env-missing"),
        pytest.param("We run aimet-torch 1.32.2, torch 2.2.2, CUDA 12.0.",
                     {"aimet-torch": "1.32.2", "torch": "2.2.2", "cuda": "12.0"}, id="prose-issue-3152"),
        pytest.param("AIMET version 1.32.2 with PyTorch 2.2.2 on python 3.10",
                     {"aimet-torch": "1.32.2", "torch": "2.2.2", "python": "3.10"}, id="prose-version-words"),
        pytest.param("aimet 1.35.0; Torch version: 2.2.2; python3.10; NVIDIA driver 535.54.03",
                     {"aimet-torch": "1.35.0", "torch": "2.2.2", "python": "3.10", "driver": "535.54.03"},
                     id="prose-colons-and-attached"),
        pytest.param("Ubuntu 20.04.6 LTS", {"glibc": "2.31"}, id="ubuntu-20.04"),
        pytest.param("Ubuntu 24.04", {"glibc": "2.39"}, id="ubuntu-24.04"),
        pytest.param("Ubuntu 18.04", {}, id="ubuntu-unmapped"),
        pytest.param('  File "/opt/conda/envs/q/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1',
                     {"python": "3.10"}, id="path-gives-python-not-torch"),
        pytest.param('  File "/usr/local/lib/python3.8/dist-packages/aimet_torch/quantsim.py"', {"python": "3.8"},
                     id="dist-packages"),
        pytest.param("ImportError: /x/aimet_common/AimetTensorQuantizer.cpython-38-x86_64-linux-gnu.so: undefined",
                     {"python": "3.8"}, id="extension-module-abi"),
        pytest.param("  * torch==2.1.*+cu121 (currently you have torch==2.2.2+cu121)", {"torch": "2.2.2+cu121"},
                     id="v1-guard-current-torch"),
        pytest.param("  * Python: cpython-310-x86_64-linux-gnu (currently you have cpython-38-x86_64-linux-gnu)",
                     {"python": "3.8"}, id="v1-guard-current-python"),
        pytest.param("ERROR: Could not find a version that satisfies the requirement torch==1.13.1+cu116 "
                     "(from aimet-torch==torch-gpu-1.31.0)", {"aimet-torch": "torch-gpu-1.31.0"}, id="pip-from"),
        pytest.param("ImportError: liblapacke.so.3: cannot open shared object file: No such file or directory",
                     {"lib:liblapacke.so.3": "absent"}, id="missing-lapacke"),
        pytest.param("ImportError: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.32' not found", {"glibc": "<2.32"},
                     id="glibc-missing-symbol-version"),
        pytest.param("from aimet_torch.v1.quantsim import QuantizationSimModel", {"aimet-api": "v1"}, id="api-v1"),
        pytest.param("export AIMET_DEFAULT_API=v1", {"aimet-api": "v1"}, id="api-from-environment"),
        pytest.param("torch 2.x, numpy 1.x, cuda:0, tensor on cuda:1, NumPy 2", {}, id="not-versions"),
        pytest.param("modules must be compiled with NumPy 2.0; aimet requires torch 2.1.2", {}, id="requirements-not-installs"),
        pytest.param("| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |",
                     {"driver": "535.104.05"}, id="nvidia-smi-cuda-is-not-torchs"),
    ],
)  # fmt: skip
def test_extraction(text: str, expected: dict[str, str]) -> None:
    assert stated(text) == expected


def test_structured_beats_prose_beats_inferred() -> None:
    text = "torch 2.3.0 here\nUbuntu 22.04\nglibc 2.31\n\nPackage Version\ntorch   2.2.2\n"
    picks = choose(extract(text).statements)
    assert (picks["torch"].statement.value, picks["torch"].statement.rank) == ("2.2.2", STRUCTURED)
    assert [c.value for c in picks["torch"].conflicts] == ["2.3.0"]
    assert (picks["glibc"].statement.value, picks["glibc"].statement.rank) == ("2.31", PROSE)
    assert [(c.value, c.rank) for c in picks["glibc"].conflicts] == [("2.35", INFERRED)]


def test_consistent_values_are_not_conflicts() -> None:
    picks = choose(extract("python 3.10\nPython version: 3.10.14\nGLIBC_2.32' not found\nUbuntu 20.04\n").statements)
    assert picks["python"].statement.value == "3.10.14" and not picks["python"].conflicts
    assert not picks["glibc"].conflicts, "2.31 satisfies <2.32"


def test_legacy_api_is_not_taken_from_a_1x_text() -> None:
    assert "aimet-api" not in stated("aimet-torch==1.35.0\nDeprecationWarning: use aimet_torch.v2.quantsim\n")


def test_line_numbers_and_evidence() -> None:
    (statement,) = extract("a\nb\n\n  torch==2.2.2  \n").statements
    assert (statement.line, statement.source, statement.text) == (4, "pip freeze", "torch==2.2.2")
    assert statement.where() == "line 4 (pip freeze): torch==2.2.2"


def test_lines_split_between_pieces_are_joined() -> None:
    text = "x\n" * 50 + "aimet-torch==2.42.0\n" + "y\n" * 50
    for piece in (1, 3, 7):
        (statement,) = extract(text, piece=piece).statements
        assert (statement.value, statement.line) == ("2.42.0", 51)


def test_only_the_head_and_the_tail_of_a_long_input_are_read() -> None:
    text = "torch==2.2.2\n" + "noise\n" * 5000 + "numpy==1.26.4\n" + "noise\n" * 5000 + "aimet-torch==1.32.2\n"
    extractor = extract(text, head=1000, tail=2000, piece=500)
    assert extractor.truncated
    assert {(s.name, s.value, s.line) for s in extractor.statements} == {
        ("torch", "2.2.2", 1), ("aimet-torch", "1.32.2", 10003),
    }  # fmt: skip


# every package fact the matrix knows, as a sentence writes it (the names as people spell them)
SPELLED = {
    "aimet-torch": "aimet-torch", "aimet-common": "aimet_common", "aimet-onnx": "aimet-onnx", "torch": "torch",
    "torchvision": "torchvision", "numpy": "numpy", "onnx": "onnx", "mmengine": "mmengine", "mmcv": "mmcv-lite",
    "timm": "timm",
}  # fmt: skip


@pytest.mark.parametrize("form", ["{name}=={v}", "{name} {v}", "{name}: {v}"])
@pytest.mark.parametrize("fact", sorted(SPELLED))
def test_prose_states_every_known_package_in_each_form(fact: str, form: str) -> None:
    from qatdoctor.knowledge.vocab import PACKAGES

    assert set(SPELLED) == {p for p in PACKAGES if p != "mmcv-lite"}, "a package the matrix knows is untested"
    line = "I set up my env with " + form.format(name=SPELLED[fact], v="1.23.4") + " and it breaks at import."
    (statement,) = extract(f"hello\n{line}\n").statements
    assert (statement.name, statement.value, statement.rank, statement.line) == (fact, "1.23.4", PROSE, 2)
    assert statement.text == line, "the evidence is the line that states it"


def test_a_version_pinned_in_a_sentence_keeps_a_rule_for_other_releases_from_firing() -> None:
    import io

    from qatdoctor.explain import explain_stream
    from qatdoctor.knowledge.load import load
    from qatdoctor.records import Status

    text = (
        "I installed aimet-torch==2.3.0 from PyPI and the legacy import fails:\n"
        "ModuleNotFoundError: No module named 'aimet_torch.v1'\n"
    )
    report = explain_stream(io.BytesIO(text.encode()), load(None), target="t")
    assert report.extracted is not None and report.extracted["aimet-torch"] == "2.3.0"
    removed = next(f for f in report.findings if f.id == "aimet-v1-api-removed-2.30")
    assert removed.status is Status.UNKNOWN and not removed.fixes, "2.3.0 still ships aimet_torch.v1"
