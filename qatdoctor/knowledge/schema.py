"""The matrix schema, declared once: it validates raw TOML and is exported as JSON Schema.

Validation collects every problem with its place (`rule 'x' → when.torch`) instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from qatdoctor.knowledge.vocab import (
    CHOICE_FACTS,
    CONDITION_FACTS,
    DETECTOR_KINDS,
    LIBRARY_FACTS,
    PRESENCE,
    PROBE_CHECKS,
    PROBE_MODELS,
    PROBE_STAGES,
    SOURCES_FIELD,
    VERSION_FACTS,
    Problem,
)

SCHEMA_VERSION = 1
__all__ = [
    "CHOICE_FACTS", "CONDITION_FACTS", "LIBRARY_FACTS", "PRESENCE", "PROBE_CHECKS", "PROBE_MODELS", "PROBE_STAGES",
    "SOURCES_FIELD", "VERSION_FACTS", "Problem",
]  # fmt: skip

SOURCE_KINDS = ("issue", "pr", "release-notes", "pypi", "wheel", "docs", "repo", "probe", "measurement")
FIX_KINDS = ("upgrade", "pin", "system", "code", "config", "install")
PROBE_STATUSES = ("fail", "silent-fail", "pass")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
CUDA_TAG = re.compile(r"^(cu\d{3}|cpu)$")
PY_MINOR = re.compile(r"^3\.\d{1,2}t?$")
SM = re.compile(r"^\d{1,2}\.\d$")


Check = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class FieldSpec:
    """One field: its JSON Schema, a check returning an error message, and whether it is required."""

    json: Mapping[str, Any]
    check: Check
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A TOML table: its fields and how an entry of it is named in messages."""

    name: str
    fields: Mapping[str, FieldSpec]
    key: str | None = None
    doc: str = ""
    nested: Mapping[str, TableSpec] = field(default_factory=dict)
    keyed: bool = False


# ---- value checks -------------------------------------------------------------------------------------


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be a non-empty string"


def _is_table(v: Any) -> str | None:
    return None if isinstance(v, dict) else "must be a table"


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _is_int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else "must be an integer"


def _is_scalar(v: Any) -> str | None:
    return None if isinstance(v, (bool, int, str)) else "must be true/false, an integer or a string"


def _is_date(v: Any) -> str | None:
    ok = isinstance(v, dt.date) and not isinstance(v, dt.datetime)
    return None if ok else "must be a TOML date (YYYY-MM-DD)"


def _is_spec(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a PEP 440 specifier string"
    try:
        SpecifierSet(v)
    except InvalidSpecifier:
        return f"invalid specifier {v!r}"
    return None


def _is_version(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a version string"
    try:
        Version(v)
    except InvalidVersion:
        return f"invalid version {v!r}"
    return None


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)} (got {v!r})"

    return check


def _matches(pattern: re.Pattern[str], what: str) -> Check:
    def check(v: Any) -> str | None:
        return None if isinstance(v, str) and pattern.match(v) else f"must be {what} (got {v!r})"

    return check


def _list_of(item: Check, *, non_empty: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list):
            return "must be an array"
        if non_empty and not v:
            return "must not be empty"
        for i, element in enumerate(v):
            problem = item(element)
            if problem:
                return f"[{i}] {problem}"
        return None

    return check


def _map_of(key: Check, value: Check) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return "must be a table"
        for k, element in v.items():
            problem = key(k) or value(element)
            if problem:
                return f"{k}: {problem}"
        return None

    return check


def _regex(v: Any) -> str | None:
    if not isinstance(v, str):
        return "must be a string"
    from qatdoctor.knowledge.signatures import regex_problem  # RE2 runs signatures: what it refuses is invalid here

    if (problem := regex_problem(v)) is not None:
        return problem
    # Nested unbounded quantifiers backtrack catastrophically on long log lines.
    if re.search(r"\([^)]*[+*][^)]*\)[+*{]", v):
        return "nested quantifiers (e.g. '(a+)+') are not allowed"
    return None


# ---- JSON Schema fragments ----------------------------------------------------------------------------

STR: Mapping[str, Any] = {"type": "string", "minLength": 1}
DATE: Mapping[str, Any] = {"type": "string", "format": "date"}
SPEC: Mapping[str, Any] = {"type": "string", "description": "PEP 440 specifier set, e.g. '>=2.1,<2.3'"}
VERSION: Mapping[str, Any] = {"type": "string", "description": "PEP 440 version"}


def _arr(items: Mapping[str, Any], **extra: Any) -> Mapping[str, Any]:
    return {"type": "array", "items": dict(items), **extra}


def _enum(choices: tuple[str, ...]) -> Mapping[str, Any]:
    return {"type": "string", "enum": list(choices)}


def f(json: Mapping[str, Any], check: Check, *, required: bool = False, doc: str = "") -> FieldSpec:
    """Shorthand for a FieldSpec."""
    schema = dict(json)
    if doc:
        schema.setdefault("description", doc)
    return FieldSpec(schema, check, required, doc)


SOURCE = TableSpec(
    "source",
    {
        "kind": f(_enum(SOURCE_KINDS), _one_of(SOURCE_KINDS), required=True),
        "ref": f(STR, _is_str, required=True, doc="URL, or evidence/<file>.json for our own probe runs"),
        "note": f(STR, _is_str),
    },
    doc="Where a fact comes from.",
)


def _condition_check(v: Any) -> str | None:
    if not isinstance(v, dict):
        return "must be a table of fact = condition"
    for fact, cond in v.items():
        problem = condition_problem(fact, cond)
        if problem:
            return f"{fact}: {problem}"
    return None


def condition_problem(fact: str, cond: Any) -> str | None:
    """Why `fact = cond` is not a valid `when` clause, or None."""
    if fact not in CONDITION_FACTS:
        return f"unknown fact (known: {', '.join(CONDITION_FACTS)})"
    if not isinstance(cond, str) or not cond.strip():
        return "condition must be a non-empty string"
    if fact in LIBRARY_FACTS:
        return None if cond in PRESENCE else "must be 'present' or 'absent'"
    if fact in CHOICE_FACTS:
        values = [c.strip() for c in cond.split("|")]
        bad = [c for c in values if c not in CHOICE_FACTS[fact]]
        return f"must be one of {', '.join(CHOICE_FACTS[fact])} (got {cond!r})" if bad else None
    if cond in PRESENCE:
        return None
    return _is_spec(cond)


WHEN_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "All clauses must hold. Versions take a PEP 440 specifier or 'present'/'absent'.",
    "additionalProperties": False,
    "properties": {
        **{name: {"type": "string"} for name in VERSION_FACTS},
        **{name: {"type": "string", "pattern": "^(" + "|".join(c) + ")(\\|(" + "|".join(c) + "))*$"}
           for name, c in CHOICE_FACTS.items()},
        **{name: _enum(PRESENCE) for name in LIBRARY_FACTS},
    },
}  # fmt: skip

SIGNATURE = TableSpec(
    "signature",
    {
        "type": f(STR, _is_str, doc="exception type, e.g. RuntimeError"),
        "text": f(STR, _is_str, doc="literal text (whitespace-insensitive)"),
        "regex": f(STR, _regex, doc="Python regex, no nested quantifiers"),
        "note": f(STR, _is_str),
    },
)
PROBE_MATCH = TableSpec(
    "probe",
    {
        "model": f(STR, _is_str, required=True, doc="probe model id, or * for any"),
        "stage": f(STR, _is_str, required=True),
        "status": f(_enum(PROBE_STATUSES), _one_of(PROBE_STATUSES), required=True),
        "check": f(STR, _is_str, doc="the silent-failure check that fired"),
    },
)
FIX = TableSpec(
    "fix",
    {
        "kind": f(_enum(FIX_KINDS), _one_of(FIX_KINDS), required=True),
        "summary": f(STR, _is_str, required=True),
        "commands": f(_arr(STR), _list_of(_is_str)),
        "code": f(STR, _is_str),
        "package": f(STR, _is_str),
        "spec": f(SPEC, _is_spec),
    },
)

AIMET = TableSpec(
    "aimet",
    {
        "version": f(VERSION, _is_version, required=True),
        "released": f(DATE, _is_date, required=True),
        "requires_python": f(SPEC, _is_spec, required=True),
        "apis": f(
            _arr(_enum(("v1", "v2")), minItems=1),
            _list_of(_one_of(("v1", "v2")), non_empty=True),
            required=True,
            doc="QuantSim APIs the release ships",
        ),
        "torch": f(SPEC, _is_spec, doc="core Requires-Dist on torch; omit when unbounded"),
        "torchvision": f(SPEC, _is_spec),
        "numpy": f(SPEC, _is_spec),
        "cuda_major": f({"type": "integer"}, _is_int, doc="CUDA major its compiled parts link"),
        "glibc_min": f(VERSION, _is_version, doc="manylinux floor of the CPython 3.10 wheel"),
        "v1": f({"type": "object"}, lambda v: None if isinstance(v, dict) else "must be a table"),
        "python_wheels": f(
            {"type": "object", "additionalProperties": {"type": "object"}},
            _map_of(_matches(PY_MINOR, "a CPython minor like 3.8"), _is_table),
            doc="wheels for other CPython minors that differ from the 3.10 one (glibc floor, CUDA, numpy)",
        ),
        "system_libs": f(_arr(STR), _list_of(_is_str)),
        "built_with_torch": f(VERSION, _is_version, doc="torch recorded in the wheel's _version.py"),
        "wheel": f(STR, _is_str),
        "yanked": f(STR, _is_str, doc="reason, if PyPI yanked it"),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="version",
    doc="One aimet-torch release.",
    nested={
        "python_wheels": TableSpec(
            "wheel",
            {
                "glibc_min": f(VERSION, _is_version),
                "cuda_major": f({"type": "integer"}, _is_int),
                "numpy": f(SPEC, _is_spec),
                "wheel": f(STR, _is_str),
            },
            keyed=True,
        ),
        "v1": TableSpec(
            "v1",
            {
                "torch": f(SPEC, _is_spec),
                "cuda_major": f({"type": "integer"}, _is_int),
                "python": f(SPEC, _is_spec),
                "extra": f(STR, _is_str),
            },
        ),
    },
)
TORCH = TableSpec(
    "torch",
    {
        "series": f({"type": "string", "pattern": r"^\d+\.\d+$"}, _matches(re.compile(r"^\d+\.\d+$"), "major.minor"),
                    required=True),
        "releases": f(_arr(VERSION, minItems=1), _list_of(_is_version, non_empty=True), required=True),
        "released": f(DATE, _is_date),
        "python": f(_arr({"type": "string", "pattern": PY_MINOR.pattern}, minItems=1),
                    _list_of(_matches(PY_MINOR, "a CPython minor like 3.10"), non_empty=True), required=True),
        "requires_python": f(SPEC, _is_spec),
        "cuda_variants": f(_arr({"type": "string", "pattern": CUDA_TAG.pattern}),
                           _list_of(_matches(CUDA_TAG, "cuXXX or cpu"))),
        "pypi_cuda": f({"type": "string", "pattern": CUDA_TAG.pattern}, _matches(CUDA_TAG, "cuXXX or cpu")),
        "torchvision": f({"type": "object", "additionalProperties": VERSION}, _map_of(_is_version, _is_version),
                         required=True, doc="torch release → torchvision release"),
        "sm": f(_arr({"type": "string", "pattern": SM.pattern}), _list_of(_matches(SM, "a compute capability"))),
        "variant_sm": f({"type": "object", "additionalProperties": _arr({"type": "string"})},
                        _map_of(_matches(CUDA_TAG, "cuXXX"), _list_of(_matches(SM, "a compute capability")))),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="series",
    doc="One torch minor series.",
)  # fmt: skip
CUDA = TableSpec(
    "cuda",
    {
        "major": f({"type": "integer"}, _is_int, required=True),
        "driver_min": f(VERSION, _is_version, required=True),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="major",
    doc="Minimum NVIDIA driver for a CUDA major family.",
)
BASES = ("measured", "vendor-docs", "reported", "inferred")
MEASURED = TableSpec(
    "measured_on",
    {
        **{name: f({"type": "string"}, _is_version, doc=f"the {name} version measured") for name in VERSION_FACTS},
        "evidence": f({"type": "string", "pattern": RULE_ID.pattern}, _matches(RULE_ID, "an [[evidence]] id"),
                      required=True, doc="the [[evidence]] record of the run: the citation of the claim"),
    },
    doc="One measured combination: the versions of the rule's facts it ran on, and its [[evidence]] record.",
)  # fmt: skip
RULE = TableSpec(
    "rule",
    {
        "id": f({"type": "string", "pattern": RULE_ID.pattern}, _matches(RULE_ID, "lower-case-with-dashes"),
                required=True),
        "kind": f(_enum(("bad", "good")), _one_of(("bad", "good")), required=True),
        "severity": f(_enum(("error", "warning", "info")), _one_of(("error", "warning", "info")), required=True),
        "scope": f(_enum(("environment", "model")), _one_of(("environment", "model")),
                   doc="model: applies only to models with `model_feature`"),
        "model_feature": f(STR, _is_str),
        "title": f(STR, _is_str, required=True),
        "summary": f(STR, _is_str, required=True),
        "details": f(STR, _is_str),
        "when": f(WHEN_JSON, _condition_check, required=True),
        "covers": f(_arr(STR), _list_of(_is_str), doc="requirement checks this rule explains"),
        "triage_only": f({"type": "boolean"}, _is_bool,
                         doc="only matched against pasted logs (explain), never against environment facts"),
        "signature": f(_arr({"$ref": "#/$defs/signature"}), lambda v: None),
        "probe": f(_arr({"$ref": "#/$defs/probe"}), lambda v: None),
        "fix": f(_arr({"$ref": "#/$defs/fix"}), lambda v: None),
        "basis": f(_enum(BASES), _one_of(BASES), required=True,
                   doc="what the rule rests on: measured (runs of ours, see measured_on; the rest of its range is "
                       "extrapolated), vendor-docs (docs, release notes, package metadata), reported (an issue), "
                       "inferred (read from code or other facts)"),
        "measured_on": f(_arr({"$ref": "#/$defs/measured_on"}), _list_of(_is_table),
                         doc="the exact versions measured, each with its [[evidence]] record (basis = measured)"),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="id",
    doc="A known-bad or known-good combination.",
    nested={"signature": SIGNATURE, "probe": PROBE_MATCH, "fix": FIX, "measured_on": MEASURED},
)  # fmt: skip
EVIDENCE = TableSpec(
    "evidence",
    {
        "id": f({"type": "string", "pattern": RULE_ID.pattern}, _matches(RULE_ID, "lower-case-with-dashes"),
                required=True),
        "date": f(DATE, _is_date, required=True),
        "versions": f({"type": "object", "additionalProperties": {"type": "string"}}, _map_of(_is_str, _is_str),
                      required=True),
        "platform": f(STR, _is_str, required=True),
        "outcome": f(STR, _is_str, required=True),
        "summary": f(STR, _is_str, required=True),
        "file": f(STR, _is_str, doc="evidence/<file>.json, relative to the matrix"),
        "cases": f({"type": "object", "additionalProperties": {"type": "string"}}, _map_of(_is_str, _is_str)),
    },
    key="id",
    doc="A probe run we did, with the exact versions.",
)  # fmt: skip

DETECT = TableSpec(
    "detect",
    {
        "kind": f(_enum(DETECTOR_KINDS), _one_of(DETECTOR_KINDS), required=True,
                  doc="detector the probe runs on the user's model (qatdoctor/target/_probe.py)"),
        "base": f(STR, _is_str, doc="dotted class path the module must be an instance of"),
        "outside": f(STR, _is_str, doc="module-subclass: the class's module must not start with this"),
        "classes": f(_arr(STR), _list_of(_is_str, non_empty=True), doc="dotted class paths"),
        "attr": f(STR, _is_str, doc="module-attr: the attribute to read"),
        "equals": f({"type": ["boolean", "string", "integer"]}, _is_scalar, doc="module-attr: the value to match"),
        "not_none": f({"type": "boolean"}, _is_bool, doc="module-attr: match when the attribute is not None"),
        "function": f(STR, _is_str, doc="function-call: the dotted function to watch during one forward"),
        "arg": f(STR, _is_str, doc="function-call: the argument to test"),
        "arg_index": f({"type": "integer"}, _is_int, doc="function-call: its position"),
        "arg_is": f(_enum(("tensor", "none")), _one_of(("tensor", "none"))),
        "exclude_inside": f(_arr(STR), _list_of(_is_str), doc="ignore calls made inside these module classes"),
        "min_calls": f({"type": "integer"}, _is_int, doc="shared-module: calls per forward"),
        "feeds": f(STR, _is_str, doc="shared-module: only modules whose output feeds this class"),
    },
)
PRODUCER = TableSpec(
    "produced_by",
    {
        "package": f(_enum(VERSION_FACTS), _one_of(VERSION_FACTS), required=True, doc="an installed-package fact"),
        "note": f(STR, _is_str, required=True, doc="how the package produces the construct"),
    },
)
CONSTRUCT = TableSpec(
    "construct",
    {
        "id": f({"type": "string", "pattern": RULE_ID.pattern}, _matches(RULE_ID, "lower-case-with-dashes"),
                required=True),
        "title": f(STR, _is_str, required=True),
        "summary": f(STR, _is_str, required=True),
        "stand_in": f(_enum(PROBE_MODELS), _one_of(PROBE_MODELS), doc="the probe's tiny model carrying it"),
        "only_with": f(_enum(VERSION_FACTS), _one_of(VERSION_FACTS),
                       doc="package without which the construct cannot occur (caveat hidden when absent)"),
        "detect": f(_arr({"$ref": "#/$defs/detect"}, minItems=1), _list_of(_is_table, non_empty=True),
                    required=True),
        "produced_by": f(_arr({"$ref": "#/$defs/produced_by"}), _list_of(_is_table)),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="id",
    doc="A model construct model-scope rules name, and how to find it in a model.",
    nested={"detect": DETECT, "produced_by": PRODUCER},
)  # fmt: skip
API = TableSpec(
    "api",
    {
        "id": f(_enum(CHOICE_FACTS["aimet-api"]), _one_of(CHOICE_FACTS["aimet-api"]), required=True),
        "title": f(STR, _is_str, required=True),
        "port_note": f(STR, _is_str, required=True, doc="what moving QuantSim code to this API means"),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="id",
    doc="A QuantSim API, and what porting code to it means.",
)
API_IDS = CHOICE_FACTS["aimet-api"]
API_LIST: Mapping[str, Any] = _arr(_enum(API_IDS))
API_LINE = TableSpec(
    "api_line",
    {
        "aimet": f(SPEC, _is_spec, required=True, doc="the aimet-torch versions of the line"),
        "apis": f(_arr(_enum(API_IDS), minItems=1), _list_of(_one_of(API_IDS), non_empty=True), required=True,
                  doc="QuantSim APIs of a release of the line the matrix has no [[aimet]] entry for"),
        "default_api": f(_enum(API_IDS), _one_of(API_IDS), required=True, doc="the API used by default"),
        "default_note": f(STR, _is_str, required=True, doc="why: the detail of the derived aimet-api fact"),
        "env_selects": f(API_LIST, _list_of(_one_of(API_IDS)), doc="AIMET_DEFAULT_API values that select an API"),
        "optional_apis": f(API_LIST, _list_of(_one_of(API_IDS)),
                           doc="APIs a release of the line may ship beside `apis` (matrix refresh reads the wheel)"),
        "basis": f(_enum(BASES), _one_of(BASES), required=True),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="aimet",
    doc="An aimet-torch release line: its QuantSim APIs and the default one.",
)  # fmt: skip
SYSTEM_LIB = TableSpec(
    "system_lib",
    {
        "soname": f(STR, _is_str, required=True, doc="e.g. liblapacke.so.3"),
        "apt": f(STR, _is_str, required=True, doc="the Debian/Ubuntu package that provides it"),
        "dnf": f(STR, _is_str, doc="the Fedora/RHEL package that provides it"),
        "pip": f(STR, _is_str, doc="a wheel that ships it (then it is not listed as an aimet-torch system_libs)"),
        "basis": f(_enum(BASES), _one_of(BASES), required=True),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="soname",
    doc="A shared library and the distribution package that provides it.",
)
OS_RELEASE = TableSpec(
    "os_release",
    {
        "distro": f(STR, _is_str, required=True, doc="as a text names it, e.g. Ubuntu"),
        "version": f(STR, _is_str, required=True, doc="e.g. 22.04"),
        "glibc": f(VERSION, _is_version, required=True, doc="the glibc the release ships"),
        "basis": f(_enum(BASES), _one_of(BASES), required=True),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="version",
    doc="An OS release and the glibc it ships.",
)
PYTHON_SUPPORT = TableSpec(
    "python_support",
    {
        "minors": f(_arr({"type": "string", "pattern": PY_MINOR.pattern}, minItems=1),
                    _list_of(_matches(PY_MINOR, "a CPython minor like 3.10"), non_empty=True), required=True,
                    doc="the CPython minors verify and sweep consider"),
        "prefer_from": f({"type": "string", "pattern": PY_MINOR.pattern}, _matches(PY_MINOR, "a CPython minor"),
                         required=True, doc="preferred: the oldest minor from this one up, then newer, then older"),
        "basis": f(_enum(BASES), _one_of(BASES), required=True),
        "notes": f(STR, _is_str),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    doc="The CPython minors verify and sweep build environments for, in order of preference (one entry).",
)  # fmt: skip
REQUIREMENT = TableSpec(
    "requirement",
    {
        "id": f({"type": "string", "pattern": RULE_ID.pattern}, _matches(RULE_ID, "lower-case-with-dots"),
                required=True, doc="the finding id; implemented in qatdoctor/diagnose/requirements.py"),
        "summary": f(STR, _is_str, required=True, doc="what the check compares"),
        "texts": f({"type": "object", "additionalProperties": {"type": "string"}}, _map_of(_is_str, _is_str),
                   required=True, doc="the check's texts: name → Python format template"),
        "basis": f(_enum(BASES), _one_of(BASES), required=True),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), lambda v: None, required=True),
    },
    key="id",
    doc="A built-in requirement check (req.*): its id, which rules' `covers` may name, and its texts.",
)  # fmt: skip

TOP_FIELDS: Mapping[str, FieldSpec] = {
    "schema_version": f({"type": "integer", "const": SCHEMA_VERSION},
                        lambda v: None if v == SCHEMA_VERSION else f"must be {SCHEMA_VERSION}", required=True),
    "matrix_version": f(STR, _is_str, required=True),
    "updated": f(DATE, _is_date, required=True),
    "description": f(STR, _is_str),
}  # fmt: skip
ARRAYS: Mapping[str, TableSpec] = {
    "aimet": AIMET, "torch": TORCH, "cuda": CUDA, "api": API, "api_line": API_LINE, "system_lib": SYSTEM_LIB,
    "os_release": OS_RELEASE, "python_support": PYTHON_SUPPORT, "requirement": REQUIREMENT, "construct": CONSTRUCT,
    "rule": RULE, "evidence": EVIDENCE,
}  # fmt: skip


# ---- validation ---------------------------------------------------------------------------------------


def validate(doc: Mapping[str, Any]) -> list[Problem]:
    """Every schema problem in a parsed matrix document."""
    problems: list[Problem] = []
    _check_fields("", doc, TOP_FIELDS, problems, allow=set(ARRAYS))
    for name, spec in ARRAYS.items():
        entries = doc.get(name, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            problems.append(Problem(name, f"must be an array of tables ([[{name}]])"))
            continue
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            where = _entry_name(spec, entry, index)
            _check_table(where, entry, spec, problems)
            key = str(entry.get(spec.key)) if spec.key else None
            if key is not None and key in seen:
                problems.append(Problem(where, f"duplicate {spec.key}"))
            if key is not None:
                seen.add(key)
    return problems


def _entry_name(spec: TableSpec, entry: Mapping[str, Any], index: int) -> str:
    key = entry.get(spec.key) if spec.key else None
    return f"{spec.name} {key!r}" if key is not None else f"{spec.name} #{index + 1}"


def _check_table(where: str, entry: Mapping[str, Any], spec: TableSpec, problems: list[Problem]) -> None:
    _check_fields(where, entry, spec.fields, problems)
    for source_index, source in enumerate(_as_list(entry.get(SOURCES_FIELD))):
        _check_sub(f"{where} → sources[{source_index}]", source, SOURCE, problems)
    for name, sub in spec.nested.items():
        value = entry.get(name)
        if value is None:
            continue
        if isinstance(value, dict) and sub.keyed:
            for key, item in value.items():
                _check_sub(f"{where} → {name}.{key}", item, sub, problems)
        elif isinstance(value, dict):
            _check_sub(f"{where} → {name}", value, sub, problems)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                _check_sub(f"{where} → {name}[{i}]", item, sub, problems)
        else:
            problems.append(Problem(f"{where} → {name}", "must be a table or an array of tables"))


def _check_sub(where: str, value: Any, spec: TableSpec, problems: list[Problem]) -> None:
    if not isinstance(value, dict):
        problems.append(Problem(where, "must be a table"))
        return
    _check_fields(where, value, spec.fields, problems)


def _check_fields(
    where: str,
    entry: Mapping[str, Any],
    fields: Mapping[str, FieldSpec],
    problems: list[Problem],
    allow: set[str] | None = None,
) -> None:
    for name, spec in fields.items():
        if name not in entry:
            if spec.required:
                problems.append(Problem(_join(where, name), "required field is missing"))
            continue
        message = spec.check(entry[name])
        if message:
            problems.append(Problem(_join(where, name), message))
    for name in entry:
        if name not in fields and not (allow and name in allow):
            known = ", ".join(sorted({*fields, *(allow or ())}))
            problems.append(Problem(_join(where, name), f"unknown key (known keys: {known})"))


def _join(where: str, name: str) -> str:
    return f"{where} → {name}" if where else name


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---- JSON Schema --------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The matrix schema as JSON Schema (draft 2020-12), for editors and other tools."""

    def obj(spec: TableSpec) -> dict[str, Any]:
        props = {name: dict(fs.json) for name, fs in spec.fields.items()}
        for name, sub in spec.nested.items():
            if name in props and sub.keyed:
                props[name] = {"type": "object", "additionalProperties": obj(sub)}
            elif name in props and props[name].get("type") == "object":
                props[name] = obj(sub)
        out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
        required = [name for name, fs in spec.fields.items() if fs.required]
        if required:
            out["required"] = required
        if spec.doc:
            out["description"] = spec.doc
        return out

    top = obj(TableSpec("matrix", TOP_FIELDS))
    for name in ARRAYS:
        top["properties"][name] = {"type": "array", "items": {"$ref": f"#/$defs/{name}"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/qatdoctor/qatdoctor/compat_matrix.schema.json",
        "title": "qatdoctor compatibility matrix",
        **top,
        "$defs": {
            **{name: obj(spec) for name, spec in ARRAYS.items()},
            "source": obj(SOURCE),
            "signature": obj(SIGNATURE),
            "probe": obj(PROBE_MATCH),
            "fix": obj(FIX),
            "measured_on": obj(MEASURED),
            "detect": obj(DETECT),
            "produced_by": obj(PRODUCER),
        },
    }
