"""The probe's protocol is documented in one place (the docstring of `_probe.py`) and every field of it is read:
a field the script writes that the docstring does not list, or one the host's decoder ignores, fails here."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.environment import _probe
from qatdoctor.environment.probe import from_payload, probe_request
from qatdoctor.knowledge.load import load
from qatdoctor.records import ModelSpec

DATA = Path(__file__).resolve().parents[1] / "data" / "probe"
SHAPES = ("MODEL", "STAGE", "ERROR", "FOLD")
Path_ = tuple[str, ...]


def documented(section: str) -> list[Path_]:
    """The field paths a docstring section lists (`cases[].stages[]  STAGE` expands STAGE's fields), lists
    transparent (`[]` dropped), a trailing `*` for any key below."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in (_probe.__doc__ or "").splitlines():
        head = re.match(r"^(\w+) fields\b", line)
        if head:
            current = head.group(1)
            sections[current] = []
        elif current and (item := re.match(r"^  (\S+)\s{2,}(\S.*)$", line)):
            sections[current].append((item.group(1), item.group(2)))
        elif current and not line.startswith("    "):
            current = None

    def expand(name: str, prefix: Path_) -> Iterator[Path_]:
        for field, meaning in sections[name]:
            path = (*prefix, *field.replace("[]", "").split("."))
            yield path
            shape = meaning.split(":")[0].split()[0]
            if shape in SHAPES:
                yield from expand(shape, path)

    return list(expand(section, ()))


def _covers(pattern: Path_, path: Path_) -> bool:
    if pattern and pattern[-1] == "*":
        return len(path) >= len(pattern) and all(a in ("*", b) for a, b in zip(pattern, path, strict=False))
    return len(pattern) == len(path) and all(a in ("*", b) for a, b in zip(pattern, path, strict=False))


def key_paths(value: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for item in value:
            yield from key_paths(item, prefix)


class Recorded(dict):  # type: ignore[type-arg]
    """A JSON object that logs the path of every key read from it (lists are transparent)."""

    def __init__(self, data: dict[str, Any], path: Path_, log: set[Path_]) -> None:
        super().__init__({k: recorded(v, (*path, k), log) for k, v in data.items()})
        self.path, self.log = path, log

    def _read(self, key: object) -> None:
        self.log.add((*self.path, str(key)))

    def __getitem__(self, key: str) -> Any:
        self._read(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._read(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._read(key)
        return super().__contains__(key)

    def keys(self) -> Any:
        for key in dict.keys(self):
            self._read(key)
        return super().keys()

    def items(self) -> Any:
        self.keys()
        return super().items()

    def values(self) -> Any:
        self.keys()
        return super().values()

    def __iter__(self) -> Any:
        return iter(self.keys())


def recorded(value: Any, path: Path_, log: set[Path_]) -> Any:
    if isinstance(value, dict):
        return Recorded(value, path, log)
    if isinstance(value, list):
        return [recorded(item, path, log) for item in value]
    return value


def responses() -> Iterator[Any]:
    """Real responses: the recorded runs, and this interpreter's (no torch) on a request with a model, an
    unsupported stage and an unknown stand-in; plus a script bug (probe_error), which no real run shows."""
    for path in sorted(DATA.glob("*.json")):
        yield pytest.param(json.loads(path.read_text()), id=path.stem)
    yield pytest.param("live", id="live-without-torch")
    bug = json.loads((DATA / "aimet-2.42.0.json").read_text())
    bug["probe_error"] = {"type": "RecursionError", "message": "", "frames": ["_probe.py:1 in main"]}
    yield pytest.param(bug, id="probe-error")


def live(tmp_path: Path) -> dict[str, Any]:
    import subprocess

    request = probe_request(["baseline"], ModelSpec(f"{tmp_path / 'm.py'}:build", input_shape=(1, 3, 8, 8)), (),
                            vocabulary={"stages": ["import", "prepare", "export"]})  # fmt: skip
    request["stand_ins"] = ["baseline", "nope"]
    (tmp_path / "request.json").write_text(json.dumps(request))
    done = subprocess.run([sys.executable, str(Path(_probe.__file__)), "--request", str(tmp_path / "request.json")],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    payload: dict[str, Any] = json.loads(done.stdout)
    assert payload.get("unsupported") == {"stages": ["export"]} and payload.get("notes"), payload
    return payload


@pytest.mark.parametrize("response", list(responses()))
def test_every_field_the_script_writes_is_documented_and_read(response: Any, tmp_path: Path) -> None:
    if response == "live":
        response = live(tmp_path)
    fields = documented("Response")
    written = set(key_paths(response))
    undocumented = {p for p in written if not any(_covers(d, p) or d[: len(p)] == p for d in fields)}
    assert not undocumented, f"written but not in the protocol: {sorted(undocumented)}"
    log: set[Path_] = set()
    from_payload(recorded(response, (), log))
    exact = [p for p in written if any(_covers(d, p) and d[-1] != "*" for d in fields)]
    unread = {p for p in exact if p not in log}
    assert not unread, f"documented and written but not read by the host: {sorted(unread)}"


def test_the_request_names_only_documented_fields() -> None:
    fields = documented("Request")
    model = ModelSpec("m.py:build", input_shape=(1, 3, 8, 8), with_fixes=True)
    matrix = load()
    vocabulary = {"stages": matrix.probe_vocabulary("stage"), "checks": matrix.probe_vocabulary("check"),
                  "detectors": matrix.probe_vocabulary("detector")}  # fmt: skip
    request = probe_request(["baseline"], model, matrix.constructs, vocabulary=vocabulary)
    sent = {p for p in key_paths(request) if p[0] != "constructs" or len(p) == 1}
    assert sent <= set(fields), sorted(sent - set(fields))


def test_the_script_implements_the_matrix_vocabulary(tmp_path: Path) -> None:
    """The matrix's probe words, sent as the host sends them, are all implemented: nothing `unsupported`, no note;
    and the stand-ins it names are the script's."""
    matrix = load()
    vocabulary = {k: matrix.probe_vocabulary(k[:-1]) for k in ("stages", "checks", "detectors")}
    request = {**probe_request(matrix.probe_vocabulary("model"), None, (), vocabulary=vocabulary), "modes": []}
    (tmp_path / "request.json").write_text(json.dumps(request))
    import subprocess

    done = subprocess.run([sys.executable, str(Path(_probe.__file__)), "--request", str(tmp_path / "request.json")],
                          capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    payload = json.loads(done.stdout)
    assert "unsupported" not in payload and "notes" not in payload, payload
    assert matrix.probe_vocabulary("model") == _probe.MODEL_IDS
