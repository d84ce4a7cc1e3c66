"""The streaming scanner: chunk boundaries, wrapped lines, exception types, bounded memory and time."""

from __future__ import annotations

import io
import time
import tracemalloc
from pathlib import Path

import pytest

from qatdoctor.explain import scan_stream
from qatdoctor.explain.diagnosis import Scan
from qatdoctor.explain.reader import iter_text
from qatdoctor.explain.scan import SignatureScanner, plan_gates
from qatdoctor.knowledge.entries import Matrix, Signature
from qatdoctor.knowledge.load import load
from qatdoctor.knowledge.signatures import _required_literals, anchor, find_signature, normalize, normalize_window

DATA = Path(__file__).resolve().parents[1] / "data" / "explain"
NATIVE_BN = (
    "The function 'native_batch_norm' is not differentiable with respect to argument 'running_mean'. "
    "This input cannot have requires_grad True."
)


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return load(None)


def scan_text(matrix: Matrix, text: str | bytes, chunk_size: int = 1 << 20) -> Scan:
    data = text.encode() if isinstance(text, str) else text
    return scan_stream(io.BytesIO(data), matrix, chunk_size=chunk_size)


def fingerprint(scan: Scan) -> tuple[list[tuple[object, ...]], ...]:
    hits = sorted((h.rule.id, h.strictness, h.line, h.last_line, h.evidence) for h in scan.hits)
    statements = sorted((s.name, s.value, s.rank, s.line) for s in scan.statements)
    return hits, statements, sorted(scan.words.items()), [tuple(f) for f in scan.frames]


@pytest.mark.parametrize("path", sorted(p for p in DATA.rglob("*") if p.is_file()), ids=lambda p: p.name)
def test_results_do_not_depend_on_where_reads_split_the_input(matrix: Matrix, path: Path) -> None:
    data = path.read_bytes()
    whole = fingerprint(scan_text(matrix, data))
    for chunk_size in (13, 256, 4096):
        assert fingerprint(scan_text(matrix, data, chunk_size)) == whole, chunk_size


def test_every_split_point_of_a_colour_crlf_wrapped_issue(matrix: Matrix) -> None:
    data = (DATA / "issue-ansi-crlf-wrapped.md").read_bytes()
    assert fingerprint(scan_text(matrix, data, chunk_size=1)) == fingerprint(scan_text(matrix, data))


def test_reader_keeps_split_sequences_whole() -> None:
    data = "é—\r\n\x1b[1;31mRuntimeError\x1b[0m: x\r\nlast\r".encode()
    for size in (1, 2, 3, 5):
        assert "".join(iter_text(io.BytesIO(data), size)) == "é—\nRuntimeError: x\nlast\n", size


def test_a_signature_split_across_a_read_boundary(matrix: Matrix) -> None:
    """The message starts a few bytes before the 1 MiB read boundary and ends after it."""
    message = f"RuntimeError: {NATIVE_BN}\n"
    pad = (1 << 20) - len(message) // 2
    data = ("x" * 79 + "\n") * (pad // 80) + "y" * (pad % 80) + "\n" + message + "tail\n" * 10
    (hit,) = [h for h in scan_text(matrix, data).hits if h.rule.id == "bn-subclass-qat-crash-v1"]
    assert (hit.strictness, hit.line) == (0, pad // 80 + 2)
    assert hit.evidence == message.strip()


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"RuntimeError: {NATIVE_BN.replace(' argument ', chr(10) + '    argument ')}", id="indented"),
        pytest.param(f"RuntimeError:\r\n{NATIVE_BN.replace(' ', chr(13) + chr(10), 3)}", id="crlf-every-word"),
        pytest.param("> RuntimeError: " + NATIVE_BN.replace(" is ", "\n> is "), id="quoted-reply"),
        pytest.param(f"\x1b[31mRuntimeError\x1b[0m: {NATIVE_BN}", id="ansi"),
        pytest.param(f"E       RuntimeError: {NATIVE_BN}", id="pytest-output"),
        pytest.param(f"2024-07-08 12:00:01 ERROR train RuntimeError:   {NATIVE_BN}", id="log-prefix"),
    ],
)
def test_wrapped_and_decorated_messages_match_strictly(matrix: Matrix, text: str) -> None:
    hits = {h.rule.id: h for h in scan_text(matrix, f"noise\n{text}\nmore noise\n").hits}
    assert hits["bn-subclass-qat-crash-v1"].strictness == 0


def test_every_literal_signature_in_the_matrix_is_found(matrix: Matrix) -> None:
    """Soundness of the gate plan: each `text` signature, as its exception prints it, is found at its strictness."""
    for rule in matrix.rules:
        for signature in rule.signatures:
            if signature.text is None:
                continue
            line = f"{signature.type}: {signature.text}" if signature.type else signature.text
            hits = {h.rule.id: h for h in scan_text(matrix, f"before\n{line}\nafter\n").hits}
            assert rule.id in hits, (rule.id, line)
            assert hits[rule.id].strictness == signature.strictness, (rule.id, line)


@pytest.mark.parametrize(
    ("prefix", "strictness"),
    [
        pytest.param("RuntimeError: ", 0, id="type"),
        pytest.param("torch.RuntimeError: ", 0, id="module-qualified"),
        pytest.param("MyRuntimeError: ", 1, id="other-type-is-looser"),
        pytest.param("ValueError: ", 1, id="wrong-type-is-looser"),
        pytest.param("", 1, id="message-only"),
    ],
)
def test_exception_type_decides_strictness(prefix: str, strictness: int) -> None:
    signature = Signature(text=NATIVE_BN, type="RuntimeError")
    match = find_signature(signature, normalize(prefix + NATIVE_BN))
    assert match is not None and match.strictness == strictness


def test_module_not_found_is_an_import_error() -> None:
    signature = Signature(text="No module named 'x'", type="ImportError")
    match = find_signature(signature, "ModuleNotFoundError: No module named 'x'")
    assert match is not None and (match.start, match.strictness) == (0, 0)


def test_typed_occurrence_beats_an_earlier_bare_one() -> None:
    signature = Signature(text="Fusion only for eval!", type="AssertionError")
    match = find_signature(
        signature, normalize_window("see: Fusion only for eval!\nAssertionError: Fusion only for eval!")
    )
    assert match is not None and match.strictness == 0


@pytest.mark.parametrize(
    ("regex", "literals"),
    [
        (r"version .GLIBC_2\.32. not found", ["version ", "GLIBC_2.32", " not found"]),
        (r"Invalid requirement: 'aimet[-_](?:torch|onnx)==\d+", ["Invalid requirement: 'aimet", "=="]),
        (r"ab*?c[xy]+d{2,3}e", ["a", "c", "e"]),
        (r"a|b", []),
        (r"[\]a]bc\.d+e", ["bc.d", "e"]),
    ],
)
def test_required_literals_of_a_regex(regex: str, literals: list[str]) -> None:
    assert _required_literals(regex) == literals


def test_gate_plan_covers_every_signature_with_a_literal_it_contains(matrix: Matrix) -> None:
    plan = plan_gates(matrix.rules)
    for rule in matrix.rules:
        for signature in rule.signatures:
            gates = [g for g, entries in plan.items() if any(e.signature is signature for e in entries)]
            assert gates, rule.id
            own = anchor(signature)
            assert own is not None, f"{rule.id}: a signature without a literal falls back to scanning for errors"
            literals = [normalize(signature.text)] if signature.text else _required_literals(signature.regex or "")
            assert all(any(g in literal for literal in literals) for g in gates), (rule.id, gates)
    assert len(plan) < sum(len(r.signatures) for r in matrix.rules) / 2, "shared gates keep the finds per chunk few"


def _traced_peak(matrix: Matrix, path: Path) -> tuple[Scan, int]:
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            scan = scan_stream(stream, matrix)
        return scan, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_on_a_20_mib_log(matrix: Matrix, tmp_path: Path) -> None:
    """The peak stays a few 1 MiB chunks, and does not grow from 20 to 28 MiB of input."""
    noise = "2025-03-01 12:00:00,000 - train - INFO - epoch 3 step 1200 loss=0.1234 lr=1e-5 grad_norm=0.91\n"
    line = "/opt/conda/lib/python3.10/site-packages/torch/nn/modules/module.py:1511: UserWarning: clone()\n"
    block = ((noise * 9 + line) * ((1 << 20) // (10 * len(line)))).encode()
    peaks = []
    for mib in (20, 28):
        path = tmp_path / f"{mib}.log"
        with path.open("wb") as out:
            for _ in range(mib):
                out.write(block)
            out.write(f"RuntimeError: {NATIVE_BN}\n".encode())
        scan, peak = _traced_peak(matrix, path)
        assert "bn-subclass-qat-crash-v1" in {h.rule.id for h in scan.hits}
        peaks.append(peak)
    assert peaks[1] < 16 << 20, f"peak {peaks[1] / (1 << 20):.1f} MiB: more than a few 1 MiB chunks"
    assert peaks[1] < peaks[0] + (1 << 20), "memory grows with the input"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"torch==" * 300_000, id="dense-gate"),
        pytest.param(b"(currently you have torch==2.1.2+cu118 " * 50_000, id="dense-near-miss"),
        pytest.param(b"a" * (6 << 20), id="one-6-MiB-line"),
        pytest.param(b"RuntimeError: " * 200_000 + b"\n", id="many-types-no-message"),
        pytest.param(b"\x1b[" * 1_000_000, id="unterminated-escapes"),
        pytest.param(b"aimet-torch 1.32.2 torch 2.2.2 cuda 12.1\n" * 100_000, id="version-lines"),
    ],
)
def test_pathological_inputs_stay_linear(matrix: Matrix, data: bytes) -> None:
    started = time.perf_counter()
    scan_text(matrix, data)
    assert time.perf_counter() - started < 10


def test_scanner_keeps_only_a_bounded_window(matrix: Matrix) -> None:
    scanner = SignatureScanner(matrix.rules)
    for _ in range(50):
        scanner.feed("x" * 100_000 + "\n")
        assert len(scanner._carry) <= 2048
