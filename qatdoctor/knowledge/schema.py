"""The matrix schema, declared once. `json_schema()` is the published JSON Schema (compat_matrix.schema.json,
`qatdoctor matrix schema`), and `validate()` checks a parsed TOML against that published file with jsonschema.
What JSON Schema cannot say is a named `format` checked here (PEP 440, RE2, TOML dates); checks across entries
live in authoring/lint (duplicate keys aside, which the loader needs).

Validation collects every problem with its place (`rule 'x' → when.torch`) instead of stopping at the first.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from qatdoctor.knowledge.files import packaged_file
from qatdoctor.knowledge.vocab import (
    CHOICE_FACTS,
    CONDITION_FACTS,
    LIBRARY_FACT_PATTERN,
    PRESENCE,
    SOURCES_FIELD,
    VERSION_FACTS,
    Problem,
)

SCHEMA_VERSION = 1
SCHEMA_NAME = "compat_matrix.schema.json"
__all__ = [
    "CHOICE_FACTS", "CONDITION_FACTS", "LIBRARY_FACT_PATTERN", "PRESENCE",
    "SOURCES_FIELD", "VERSION_FACTS", "Problem",
]  # fmt: skip

SOURCE_KINDS = ("issue", "pr", "release-notes", "pypi", "wheel", "docs", "repo", "probe", "measurement")
CAUSES = ("environment", "model-code")
FIX_KINDS = ("upgrade", "pin", "system", "code", "config", "install")
PROBE_STATUSES = ("fail", "silent-fail", "pass")
PROBE_TERM_KINDS = ("model", "stage", "check", "detector")
PROBE_WORD = re.compile(r"^[a-z][a-z0-9_-]*$")
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
CUDA_TAG = re.compile(r"^(cu\d{3}|cpu)$")
PY_MINOR = re.compile(r"^3\.\d{1,2}t?$")
SM = re.compile(r"^\d{1,2}\.\d$")
EXPECTED = "x-expected"  # annotation: what a `pattern` or a name means, for the message


@dataclass(frozen=True)
class FieldSpec:
    """One field: its JSON Schema and whether it is required."""

    json: Mapping[str, Any]
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


# ---- formats: what JSON Schema cannot say -------------------------------------------------------------
# Each returns True or raises ValueError with the message; jsonschema applies `format` to any instance, so
# values of the wrong type pass here and fail on `type`.


def _toml_date(v: Any) -> bool:
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return True
    raise ValueError("must be a TOML date (YYYY-MM-DD)")


def _specifier(v: Any) -> bool:
    if isinstance(v, str):
        try:
            SpecifierSet(v)
        except InvalidSpecifier:
            raise ValueError(f"invalid specifier {v!r}") from None
    return True


def _version(v: Any) -> bool:
    if isinstance(v, str):
        try:
            Version(v)
        except InvalidVersion:
            raise ValueError(f"invalid version {v!r}") from None
    return True


def _condition(v: Any) -> bool:
    """A version clause of `when`: 'present', 'absent' or a PEP 440 specifier."""
    if isinstance(v, str) and not v.strip():
        raise ValueError("condition must be a non-empty string")
    return v in PRESENCE or _specifier(v)


def _signature_regex(v: Any) -> bool:
    if not isinstance(v, str):
        return True
    from qatdoctor.knowledge.signatures import regex_problem  # RE2 runs signatures: what it refuses is invalid here

    if (problem := regex_problem(v)) is not None:
        raise ValueError(problem)
    # Nested unbounded quantifiers backtrack catastrophically on long log lines.
    if re.search(r"\([^)]*[+*][^)]*\)[+*{]", v):
        raise ValueError("nested quantifiers (e.g. '(a+)+') are not allowed")
    return True


FORMATS = {
    "date": _toml_date,
    "pep440-specifier": _specifier,
    "pep440-version": _version,
    "condition": _condition,
    "re2-signature": _signature_regex,
}


# ---- JSON Schema fragments ----------------------------------------------------------------------------

STR: Mapping[str, Any] = {"type": "string", "minLength": 1}
DATE: Mapping[str, Any] = {"format": "date", "description": "a TOML date (YYYY-MM-DD)"}
SPEC: Mapping[str, Any] = {
    "type": "string", "format": "pep440-specifier", "description": "PEP 440 specifier set, e.g. '>=2.1,<2.3'"
}  # fmt: skip
VERSION: Mapping[str, Any] = {"type": "string", "format": "pep440-version", "description": "PEP 440 version"}
REGEX: Mapping[str, Any] = {"type": "string", "format": "re2-signature"}
INT: Mapping[str, Any] = {"type": "integer"}
BOOL: Mapping[str, Any] = {"type": "boolean"}


def _arr(items: Mapping[str, Any], **extra: Any) -> Mapping[str, Any]:
    return {"type": "array", "items": dict(items), **extra}


def _enum(choices: tuple[str, ...]) -> Mapping[str, Any]:
    return {"type": "string", "enum": list(choices)}


def _pattern(pattern: re.Pattern[str], expected: str) -> Mapping[str, Any]:
    return {"type": "string", "pattern": pattern.pattern, EXPECTED: expected}


def _map(keys: Mapping[str, Any], values: Mapping[str, Any]) -> Mapping[str, Any]:
    return {"type": "object", "propertyNames": dict(keys), "additionalProperties": dict(values)}


def f(json: Mapping[str, Any], *, required: bool = False, doc: str = "") -> FieldSpec:
    """Shorthand for a FieldSpec."""
    schema = dict(json)
    if doc:
        schema.setdefault("description", doc)
    return FieldSpec(schema, required, doc)


SOURCE = TableSpec(
    "source",
    {
        "kind": f(_enum(SOURCE_KINDS), required=True),
        "ref": f(STR, required=True, doc="URL, or evidence/<file>.json for our own probe runs"),
        "note": f(STR),
    },
    doc="Where a fact comes from.",
)


WHEN_JSON: Mapping[str, Any] = {
    "type": "object",
    "description": "All clauses must hold. Versions take a PEP 440 specifier or 'present'/'absent'.",
    "propertyNames": {
        "anyOf": [{"enum": list(CONDITION_FACTS)}, {"pattern": LIBRARY_FACT_PATTERN, EXPECTED: "lib:<soname>"}],
        EXPECTED: "fact",
    },
    "properties": {
        **{name: {"type": "string", "format": "condition"} for name in VERSION_FACTS},
        **{name: {"type": "string", "pattern": "^(" + "|".join(c) + ")(\\|(" + "|".join(c) + "))*$",
                  EXPECTED: "one of " + ", ".join(c)}
           for name, c in CHOICE_FACTS.items()},
    },
    "patternProperties": {LIBRARY_FACT_PATTERN: _enum(PRESENCE)},
}  # fmt: skip

SIGNATURE = TableSpec(
    "signature",
    {
        "type": f(STR, doc="exception type, e.g. RuntimeError"),
        "text": f(STR, doc="literal text (whitespace-insensitive)"),
        "regex": f(REGEX, doc="Python regex, no nested quantifiers"),
        "note": f(STR),
    },
)
PROBE_MATCH = TableSpec(
    "probe",
    {
        "model": f(STR, required=True, doc="a [[probe_term]] model, or * for any"),
        "stage": f(STR, required=True, doc="a [[probe_term]] stage"),
        "status": f(_enum(PROBE_STATUSES), required=True),
        "check": f(STR, doc="the silent-failure check that fired (a [[probe_term]] check)"),
    },
)
FIX = TableSpec(
    "fix",
    {
        "kind": f(_enum(FIX_KINDS), required=True),
        "summary": f(STR, required=True),
        "commands": f(_arr(STR)),
        "code": f(STR),
        "package": f(STR),
        "spec": f(SPEC),
    },
)

PROPOSED: Mapping[str, Any] = {"const": True}
PROPOSED_DOC = (
    "written by `matrix refresh`, not reviewed yet: never recommended, never known-good (delete the line once "
    "reviewed)"
)
AIMET = TableSpec(
    "aimet",
    {
        "version": f(VERSION, required=True),
        "released": f(DATE, required=True),
        "requires_python": f(SPEC, required=True),
        "apis": f(
            _arr(_enum(("v1", "v2")), minItems=1),
            required=True,
            doc="QuantSim APIs the release ships",
        ),
        "torch": f(SPEC, doc="core Requires-Dist on torch; omit when unbounded"),
        "torchvision": f(SPEC),
        "numpy": f(SPEC),
        "cuda_major": f({"type": "integer"}, doc="CUDA major its compiled parts link"),
        "glibc_min": f(VERSION, doc="manylinux floor of the CPython 3.10 wheel"),
        "v1": f({"type": "object"}),
        "python_wheels": f(
            _map(_pattern(PY_MINOR, "a CPython minor like 3.8"), {"type": "object"}),
            doc="wheels for other CPython minors that differ from the 3.10 one (glibc floor, CUDA, numpy)",
        ),
        "system_libs": f(_arr(STR)),
        "built_with_torch": f(VERSION, doc="torch recorded in the wheel's _version.py"),
        "wheel": f(STR),
        "yanked": f(STR, doc="reason, if PyPI yanked it"),
        "proposed": f(PROPOSED, doc=PROPOSED_DOC),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="version",
    doc="One aimet-torch release.",
    nested={
        "python_wheels": TableSpec(
            "wheel",
            {
                "glibc_min": f(VERSION),
                "cuda_major": f({"type": "integer"}),
                "numpy": f(SPEC),
                "wheel": f(STR),
            },
            keyed=True,
        ),
        "v1": TableSpec(
            "v1",
            {
                "torch": f(SPEC),
                "cuda_major": f({"type": "integer"}),
                "python": f(SPEC),
                "extra": f(STR),
            },
        ),
    },
)
TORCH = TableSpec(
    "torch",
    {
        "series": f(_pattern(re.compile(r"^\d+\.\d+$"), "major.minor"), required=True),
        "releases": f(_arr(VERSION, minItems=1), required=True),
        "released": f(DATE),
        "python": f(_arr(_pattern(PY_MINOR, "a CPython minor like 3.10"), minItems=1), required=True),
        "requires_python": f(SPEC),
        "cuda_variants": f(_arr(_pattern(CUDA_TAG, "cuXXX or cpu"))),
        "pypi_cuda": f(_pattern(CUDA_TAG, "cuXXX or cpu")),
        "torchvision": f(_map(VERSION, VERSION),
                         required=True, doc="torch release → torchvision release"),
        "sm": f(_arr(_pattern(SM, "a compute capability"))),
        "variant_sm": f(_map(_pattern(CUDA_TAG, "cuXXX"), _arr(_pattern(SM, "a compute capability")))),
        "proposed": f(PROPOSED, doc=PROPOSED_DOC),
        "proposed_releases": f(_arr(VERSION), doc="releases of a reviewed series that `matrix refresh` added and "
                               "nobody has reviewed yet: never recommended, never known-good"),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="series",
    doc="One torch minor series.",
)  # fmt: skip
CUDA = TableSpec(
    "cuda",
    {
        "major": f({"type": "integer"}, required=True),
        "driver_min": f(VERSION, required=True),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="major",
    doc="Minimum NVIDIA driver for a CUDA major family.",
)
BASES = ("measured", "vendor-docs", "reported", "inferred")
MEASURED = TableSpec(
    "measured_on",
    {
        **{name: f(VERSION, doc=f"the {name} version measured") for name in VERSION_FACTS},
        "evidence": f(_pattern(RULE_ID, "an [[evidence]] id"), required=True,
                      doc="the [[evidence]] record of the run: the citation of the claim"),
    },
    doc="One measured combination: the versions of the rule's facts it ran on, and its [[evidence]] record.",
)  # fmt: skip
RULE = TableSpec(
    "rule",
    {
        "id": f(_pattern(RULE_ID, "lower-case-with-dashes"), required=True),
        "kind": f(_enum(("bad", "good")), required=True),
        "severity": f(_enum(("error", "warning", "info")), required=True),
        "scope": f(_enum(("environment", "model")),
                   doc="model: applies only to models with `model_feature`"),
        "model_feature": f(STR),
        "title": f(STR, required=True),
        "summary": f(STR, required=True),
        "details": f(STR),
        "when": f(WHEN_JSON, required=True),
        "covers": f(_arr(STR), doc="requirement checks this rule explains"),
        "triage_only": f({"type": "boolean"},
                         doc="only matched against pasted logs (explain), never against environment facts"),
        "cause": f(_enum(CAUSES),
                   doc="model-code: the error comes from the user's model code, not the environment (no version move)"),
        "signature": f(_arr({"$ref": "#/$defs/signature"})),
        "probe": f(_arr({"$ref": "#/$defs/probe"})),
        "fix": f(_arr({"$ref": "#/$defs/fix"})),
        "basis": f(_enum(BASES), required=True,
                   doc="what the rule rests on: measured (runs of ours, see measured_on; the rest of its range is "
                       "extrapolated), vendor-docs (docs, release notes, package metadata), reported (an issue), "
                       "inferred (read from code or other facts)"),
        "measured_on": f(_arr({"$ref": "#/$defs/measured_on"}),
                         doc="the exact versions measured, each with its [[evidence]] record (basis = measured)"),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A known-bad or known-good combination.",
    nested={"signature": SIGNATURE, "probe": PROBE_MATCH, "fix": FIX, "measured_on": MEASURED},
)  # fmt: skip
EVIDENCE = TableSpec(
    "evidence",
    {
        "id": f(_pattern(RULE_ID, "lower-case-with-dashes"), required=True),
        "date": f(DATE, required=True),
        "versions": f(_map(STR, STR),
                      required=True),
        "platform": f(STR, required=True),
        "outcome": f(STR, required=True),
        "summary": f(STR, required=True),
        "file": f(STR, doc="evidence/<file>.json, relative to the matrix"),
        "cases": f(_map(STR, STR)),
    },
    key="id",
    doc="A probe run we did, with the exact versions.",
)  # fmt: skip

DETECT = TableSpec(
    "detect",
    {
        "kind": f(STR, required=True, doc="a [[probe_term]] detector: what the probe runs on the user's model"),
        "base": f(STR, doc="dotted class path the module must be an instance of"),
        "outside": f(STR, doc="module-subclass: the class's module must not start with this"),
        "classes": f(_arr(STR), doc="dotted class paths"),
        "attr": f(STR, doc="module-attr: the attribute to read"),
        "equals": f({"type": ["boolean", "string", "integer"]}, doc="module-attr: the value to match"),
        "not_none": f({"type": "boolean"}, doc="module-attr: match when the attribute is not None"),
        "function": f(STR, doc="function-call: the dotted function to watch during one forward"),
        "arg": f(STR, doc="function-call: the argument to test"),
        "arg_index": f({"type": "integer"}, doc="function-call: its position"),
        "arg_is": f(_enum(("tensor", "none"))),
        "exclude_inside": f(_arr(STR), doc="ignore calls made inside these module classes"),
        "min_calls": f({"type": "integer"}, doc="shared-module: calls per forward"),
        "feeds": f(STR, doc="shared-module: only modules whose output feeds this class"),
    },
)
PRODUCER = TableSpec(
    "produced_by",
    {
        "package": f(_enum(VERSION_FACTS), required=True, doc="an installed-package fact"),
        "note": f(STR, required=True, doc="how the package produces the construct"),
    },
)
CONSTRUCT = TableSpec(
    "construct",
    {
        "id": f(_pattern(RULE_ID, "lower-case-with-dashes"), required=True),
        "title": f(STR, required=True),
        "summary": f(STR, required=True),
        "stand_in": f(STR, doc="the probe's tiny model carrying it (a [[probe_term]] model)"),
        "only_with": f(_enum(VERSION_FACTS),
                       doc="package without which the construct cannot occur (caveat hidden when absent)"),
        "detect": f(_arr({"$ref": "#/$defs/detect"}, minItems=1),
                    required=True),
        "produced_by": f(_arr({"$ref": "#/$defs/produced_by"})),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A model construct model-scope rules name, and how to find it in a model.",
    nested={"detect": DETECT, "produced_by": PRODUCER},
)  # fmt: skip
FAMILY_BRINGS = TableSpec(
    "brings",
    {
        "construct": f(STR, required=True, doc="a [[construct]] id the family's models carry"),
        "rules": f(_arr(STR), doc="the construct's model-scope rules a report makes likely (default: all)"),
        "when": f(STR, required=True, doc="under which conditions the models carry it"),
        "symptoms": f(_arr(_arr(STR, minItems=1), minItems=1), required=True,
                      doc="word groups (lower case): the text must contain a word of every group"),
        "basis": f(_enum(BASES), required=True),
        "evidence": f(STR, required=True, doc="what shows the family carries the construct"),
    },
)  # fmt: skip
MODEL_FAMILY = TableSpec(
    "model_family",
    {
        "id": f(_pattern(RULE_ID, "lower-case-with-dashes"), required=True),
        "title": f(STR, required=True),
        "words": f(_arr(STR, minItems=1), required=True,
                   doc="lower-case words that name the family in a report (model names, package names)"),
        "packages": f(_arr(STR), doc="the packages that build the family's models"),
        "brings": f(_arr({"$ref": "#/$defs/brings"}, minItems=1), required=True),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A family of models a report may name, and the constructs its models bring (explain's likely findings).",
    nested={"brings": FAMILY_BRINGS},
)  # fmt: skip
API = TableSpec(
    "api",
    {
        "id": f(_enum(CHOICE_FACTS["aimet-api"]), required=True),
        "title": f(STR, required=True),
        "port_note": f(STR, required=True, doc="what moving QuantSim code to this API means"),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A QuantSim API, and what porting code to it means.",
)
API_IDS = CHOICE_FACTS["aimet-api"]
API_LIST: Mapping[str, Any] = _arr(_enum(API_IDS))
API_LINE = TableSpec(
    "api_line",
    {
        "aimet": f(SPEC, required=True, doc="the aimet-torch versions of the line"),
        "apis": f(_arr(_enum(API_IDS), minItems=1), required=True,
                  doc="QuantSim APIs of a release of the line the matrix has no [[aimet]] entry for"),
        "default_api": f(_enum(API_IDS), required=True, doc="the API used by default"),
        "default_note": f(STR, required=True, doc="why: the detail of the derived aimet-api fact"),
        "env_selects": f(API_LIST, doc="AIMET_DEFAULT_API values that select an API"),
        "optional_apis": f(API_LIST,
                           doc="APIs a release of the line may ship beside `apis` (matrix refresh reads the wheel)"),
        "basis": f(_enum(BASES), required=True),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="aimet",
    doc="An aimet-torch release line: its QuantSim APIs and the default one.",
)  # fmt: skip
SYSTEM_LIB = TableSpec(
    "system_lib",
    {
        "soname": f(STR, required=True, doc="e.g. liblapacke.so.3"),
        "apt": f(STR, required=True, doc="the Debian/Ubuntu package that provides it"),
        "dnf": f(STR, doc="the Fedora/RHEL package that provides it"),
        "pip": f(STR, doc="a wheel that ships it (then it is not listed as an aimet-torch system_libs)"),
        "basis": f(_enum(BASES), required=True),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="soname",
    doc="A shared library and the distribution package that provides it.",
)
OS_RELEASE = TableSpec(
    "os_release",
    {
        "distro": f(STR, required=True, doc="as a text names it, e.g. Ubuntu"),
        "version": f(STR, required=True, doc="e.g. 22.04"),
        "glibc": f(VERSION, required=True, doc="the glibc the release ships"),
        "basis": f(_enum(BASES), required=True),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="version",
    doc="An OS release and the glibc it ships.",
)
PYTHON_SUPPORT = TableSpec(
    "python_support",
    {
        "minors": f(_arr(_pattern(PY_MINOR, "a CPython minor like 3.10"), minItems=1), required=True,
                    doc="the CPython minors verify and sweep consider"),
        "prefer_from": f(_pattern(PY_MINOR, "a CPython minor"),
                         required=True, doc="preferred: the oldest minor from this one up, then newer, then older"),
        "basis": f(_enum(BASES), required=True),
        "notes": f(STR),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    doc="The CPython minors verify and sweep build environments for, in order of preference (one entry).",
)  # fmt: skip
REQUIREMENT = TableSpec(
    "requirement",
    {
        "id": f(_pattern(RULE_ID, "lower-case-with-dots"),
                required=True, doc="the finding id; implemented in qatdoctor/diagnose/requirements.py"),
        "summary": f(STR, required=True, doc="what the check compares"),
        "texts": f(_map(STR, STR),
                   required=True, doc="the check's texts: name → Python format template"),
        "basis": f(_enum(BASES), required=True),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A built-in requirement check (req.*): its id, which rules' `covers` may name, and its texts.",
)  # fmt: skip

PROBE_TERM = TableSpec(
    "probe_term",
    {
        "kind": f(_enum(PROBE_TERM_KINDS), required=True),
        "id": f(_pattern(PROBE_WORD, "lower-case, _ or -"), required=True,
                doc="the word as qatdoctor/environment/_probe.py reports or reads it"),
        "summary": f(STR, required=True, doc="what it is or measures"),
        SOURCES_FIELD: f(_arr({"$ref": "#/$defs/source"}, minItems=1), required=True),
    },
    key="id",
    doc="A word of the live probe's vocabulary: a stand-in model, a pipeline stage (in order), a silent check or "
    "a construct detector that qatdoctor/environment/_probe.py implements. A definition, not a claim: no basis.",
)  # fmt: skip

TOP_FIELDS: Mapping[str, FieldSpec] = {
    "schema_version": f({"type": "integer", "const": SCHEMA_VERSION}, required=True),
    "matrix_version": f(STR, required=True),
    "updated": f(DATE, required=True),
    "description": f(STR),
}  # fmt: skip
ARRAYS: Mapping[str, TableSpec] = {
    "aimet": AIMET, "torch": TORCH, "cuda": CUDA, "api": API, "api_line": API_LINE, "system_lib": SYSTEM_LIB,
    "os_release": OS_RELEASE, "python_support": PYTHON_SUPPORT, "requirement": REQUIREMENT, "probe_term": PROBE_TERM,
    "construct": CONSTRUCT, "rule": RULE, "evidence": EVIDENCE, "model_family": MODEL_FAMILY,
}  # fmt: skip


# ---- validation ---------------------------------------------------------------------------------------


def validate(doc: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a parsed matrix document: the published JSON Schema (jsonschema, with the formats
    above), then duplicate keys."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: ([str(part) for part in e.absolute_path], e.validator))
    problems = [problem for error in errors for problem in _problems(doc, error)]
    return problems + list(_duplicates(doc))


@cache
def _validator() -> Any:
    """A jsonschema validator of the published schema file (imported only when a TOML is validated)."""
    import jsonschema

    schema = json.loads(packaged_file(SCHEMA_NAME).read_text(encoding="utf-8"))
    checker = jsonschema.FormatChecker(formats=())
    for name, check in FORMATS.items():
        checker.checks(name, raises=ValueError)(check)
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


_TYPES = {
    "string": "a string", "integer": "an integer", "boolean": "true or false", "array": "an array",
    "object": "a table", "number": "a number",
}  # fmt: skip


def _problems(doc: Mapping[str, Any], error: Any) -> Iterator[Problem]:
    """One jsonschema error as located problems, in qatdoctor's words."""
    path = list(error.absolute_path)
    where = _where(doc, path)
    kind, value, schema, instance = error.validator, error.validator_value, error.schema, error.instance
    if "propertyNames" in error.schema_path:  # a key of a table: `instance` is the key
        expected = schema.get(EXPECTED, "")
        if kind == "anyOf" and "enum" in value[0]:  # the fixed names, or a pattern (lib:<soname>)
            names = ", ".join([*value[0]["enum"], *(s[EXPECTED] for s in value[1:] if EXPECTED in s)])
            yield Problem(where, f"{instance}: unknown {expected} (known: {names})")
        elif kind == "enum":
            yield Problem(where, f"{instance}: unknown {expected} (known: {', '.join(value)})")
        else:
            yield Problem(where, f"{instance}: {_message(kind, value, schema, instance, error)}")
    elif kind == "required":
        for name in value:
            if isinstance(instance, dict) and name not in instance:
                yield Problem(_join(where, name), "required field is missing")
    elif kind == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        for name in instance:
            if name not in known:
                yield Problem(_join(where, name), f"unknown key (known keys: {', '.join(sorted(known))})")
    elif kind == "type" and len(path) == 1 and path[0] in ARRAYS:
        yield Problem(where, f"must be an array of tables ([[{path[0]}]])")
    else:
        yield Problem(where, _message(kind, value, schema, instance, error))


def _message(kind: str, value: Any, schema: Mapping[str, Any], instance: Any, error: Any) -> str:
    if kind == "format":
        return str(error.cause)
    if kind == "enum":
        return f"must be one of {', '.join(map(str, value))} (got {instance!r})"
    if kind == "const":
        return f"must be {json.dumps(value)}" + (" (delete the line once reviewed)" if value is True else "")
    if kind == "pattern":
        return f"must be {schema.get(EXPECTED, 'like ' + value)} (got {instance!r})"
    if kind == "minLength":
        return "must be a non-empty string"
    if kind == "minItems":
        return "must not be empty"
    if kind == "type":
        wanted = [value] if isinstance(value, str) else list(value)
        return "must be " + " or ".join(_TYPES.get(name, name) for name in wanted)
    return f"does not follow the schema ({kind})"


def _where(doc: Mapping[str, Any], path: list[Any]) -> str:
    """`rule 'x' → sources[0] → kind` for the path ["rule", 3, "sources", 0, "kind"]."""
    if not path:
        return ""
    head, rest = path[0], path[1:]
    where = str(head)
    entries = doc.get(head) if isinstance(head, str) else None
    if head in ARRAYS and rest and isinstance(rest[0], int) and isinstance(entries, list):
        entry = entries[rest[0]]
        where = _entry_name(ARRAYS[head], entry if isinstance(entry, dict) else {}, rest[0])
        rest = rest[1:]
    for part in rest:
        where = f"{where}[{part}]" if isinstance(part, int) else _join(where, str(part))
    return where


def _duplicates(doc: Mapping[str, Any]) -> Iterator[Problem]:
    for name, spec in ARRAYS.items():
        entries = doc.get(name)
        if spec.key is None or not isinstance(entries, list):
            continue
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or spec.key not in entry:
                continue
            key = str(entry[spec.key])
            if key in seen:
                yield Problem(_entry_name(spec, entry, index), f"duplicate {spec.key}")
            seen.add(key)


def _entry_name(spec: TableSpec, entry: Mapping[str, Any], index: int) -> str:
    key = entry.get(spec.key) if spec.key else None
    return f"{spec.name} {key!r}" if key is not None else f"{spec.name} #{index + 1}"


def _join(where: str, name: str) -> str:
    return f"{where} → {name}" if where else name


# ---- JSON Schema --------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The matrix schema as JSON Schema (draft 2020-12), for editors and other tools."""

    def obj(spec: TableSpec) -> dict[str, Any]:
        props = {name: dict(fs.json) for name, fs in spec.fields.items()}
        for name, sub in spec.nested.items():
            if name in props and sub.keyed:
                props[name] = {**props[name], "additionalProperties": obj(sub)}
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
            "brings": obj(FAMILY_BRINGS),
        },
    }
