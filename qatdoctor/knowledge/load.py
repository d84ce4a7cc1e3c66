"""Finding, reading and validating compat_matrix.toml."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from packaging.specifiers import SpecifierSet

from qatdoctor.errors import QatdoctorError
from qatdoctor.knowledge import vocab
from qatdoctor.knowledge.entries import (
    AimetRelease,
    Api,
    ApiLine,
    Condition,
    Construct,
    CudaDriver,
    EvidenceRecord,
    FamilyBrings,
    Matrix,
    ModelFamily,
    OsRelease,
    ProbeMatch,
    ProbeTerm,
    Producer,
    PythonSupport,
    Requirement,
    Rule,
    RuleFix,
    Signature,
    SystemLib,
    TorchSeries,
    V1Requirements,
    WheelVariant,
)
from qatdoctor.knowledge.files import packaged_file
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.records import Measurement, Source

MATRIX_ENV = "QATDOCTOR_MATRIX"
MATRIX_NAME = "compat_matrix.toml"
MAX_BYTES = 8 * 1024 * 1024
EVIDENCE_PREFIX = "evidence:"
SIDECAR_FORMAT = 2  # 1 trusted size + CRC-32; 2: a header line with the sha256 of the TOML, schema and document


class MatrixError(QatdoctorError):
    """The matrix file is missing, not TOML, or does not follow the schema."""

    def __init__(self, path: str, problems: list[vocab.Problem] | str) -> None:
        self.path = path
        self.problems = [vocab.Problem("", problems)] if isinstance(problems, str) else problems
        first = self.problems[0] if self.problems else vocab.Problem("", "invalid")
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid matrix {path}: {first}{more}")


def default_path() -> Path:
    """`$QATDOCTOR_MATRIX` if set, else the matrix shipped with qatdoctor."""
    env = os.environ.get(MATRIX_ENV)
    return Path(env) if env else packaged_file(MATRIX_NAME)


def read_document(path: Path) -> tuple[dict[str, Any], bytes]:
    """Parse the TOML, with file/line/column in the error when it is not TOML."""
    where = str(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO with no writer: no hang
        with os.fdopen(descriptor, "rb") as handle:
            os.set_blocking(descriptor, True)
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise MatrixError(where, "file not found") from None
    except IsADirectoryError:
        raise MatrixError(where, "is a directory, not a TOML file") from None
    except OSError as exc:
        raise MatrixError(where, f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise MatrixError(where, f"larger than {MAX_BYTES // (1024 * 1024)} MiB; refusing to parse")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MatrixError(where, f"not UTF-8 (byte {exc.start})") from None
    return parse_toml(text, where), data


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """tomllib, with its errors as MatrixError (imported here: the compiled sidecar needs no parser)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MatrixError(where, f"not valid TOML: {exc}") from None
    except RecursionError:
        raise MatrixError(where, "not valid TOML: nested too deeply") from None


def load(path: Path | None = None) -> Matrix:
    """Read, validate and build the matrix; raise MatrixError listing every problem.

    A compiled sidecar (`compat_matrix.json`, written by `qatdoctor matrix compile`) is used instead of parsing
    the TOML only when it records the sha256 of exactly these TOML bytes (and this sidecar format and schema);
    anything else about it — stale, malformed, not buildable — and the TOML is parsed and validated as usual.
    tomllib is pure Python and the parse dominates `check`.
    """
    path = path or default_path()
    state = sidecar(path)
    if state.document is not None:
        try:
            return build(state.document, path=str(path), sha256=state.digest)
        except Exception:  # a sidecar that does not build is ignored: the TOML decides
            pass
    doc, raw = read_document(path)
    problems = _validate(doc)
    if problems:
        raise MatrixError(str(path), problems)
    return build(doc, path=str(path), sha256=_sha256(raw))


def _validate(doc: dict[str, Any]) -> list[vocab.Problem]:
    """Schema validation, imported only when a TOML is parsed (the compiled sidecar was validated already)."""
    from qatdoctor.knowledge.schema import validate

    return validate(doc)


def compiled_path(path: Path) -> Path:
    return path.with_suffix(".json")


def compile_matrix(path: Path) -> Path:
    """Validate the TOML and write its sidecar JSON (dates as ISO strings) next to it, atomically."""
    from qatdoctor import atomic

    doc, raw = read_document(path)
    problems = _validate(doc)
    if problems:
        raise MatrixError(str(path), problems)
    matrix = build(doc, path=str(path))
    target = compiled_path(path)
    document = json.dumps(doc, default=_iso, sort_keys=True, separators=(",", ":")).encode("utf-8")
    header = {
        "sidecar_format": SIDECAR_FORMAT,
        "schema_sha256": _schema_digest(),
        "source_sha256": _sha256(raw),
        "source_size": len(raw),
        "document_sha256": _sha256(document),
        # what the collector looks for, read by environment/prefetch.py before anything else is imported
        "collect": vocab.collector_request(matrix.checked_libraries()),
    }
    try:  # line 1: the header; line 2: the document, whose bytes the header's digest covers
        atomic.write_bytes(target, json.dumps(header, sort_keys=True).encode() + b"\n" + document + b"\n")
    except OSError as error:
        raise MatrixError(str(target), f"cannot write the compiled sidecar: {error.strerror or error}") from None
    return target


def _iso(value: object) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {value!r}")


class Sidecar(NamedTuple):
    """What the compiled sidecar next to a TOML is: missing, current (with its document), stale or malformed."""

    state: str
    reason: str = ""
    document: dict[str, Any] | None = None
    digest: str = ""


def sidecar(path: Path) -> Sidecar:
    """The sidecar of `path`, trusted only when it records this sidecar format, this schema and the sha256 of
    exactly these TOML bytes (size and CRC are not enough: a crafted file can match both)."""
    target = compiled_path(path)
    try:
        data = target.read_bytes()
    except OSError:
        return Sidecar("missing")
    try:
        raw = path.read_bytes()
    except OSError:
        return Sidecar("stale", "the TOML cannot be read")
    head, _, document = data.partition(b"\n")
    try:
        payload = json.loads(head)
    except (ValueError, RecursionError):
        return Sidecar("malformed", f"{target.name} does not start with a JSON header line")
    if not isinstance(payload, dict):
        return Sidecar("malformed", f"{target.name}'s header is not a JSON object")
    if payload.get("sidecar_format") != SIDECAR_FORMAT or payload.get("schema_sha256") != _schema_digest():
        return Sidecar("stale", "compiled by another qatdoctor version or schema")
    if payload.get("source_size") != len(raw) or payload.get("source_sha256") != _sha256(raw):
        return Sidecar("stale", f"compiled from other TOML bytes than {path.name}")
    document = document.rstrip(b"\n")
    if payload.get("document_sha256") != _sha256(document):
        return Sidecar("malformed", f"{target.name}'s document does not match its recorded sha256")
    try:
        doc = json.loads(document)
    except (ValueError, RecursionError):
        return Sidecar("malformed", f"{target.name}'s document is not JSON")
    if not isinstance(doc, dict):
        return Sidecar("malformed", f"{target.name}'s document is not a JSON object")
    try:
        _restore_dates(doc)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        return Sidecar("malformed", f"{target.name}: bad dates ({type(error).__name__})")
    return Sidecar("current", document=doc, digest=str(payload["source_sha256"]))


def checked_libraries(path: Path) -> tuple[str, ...]:
    """The matrix's `checked_libraries()`, from its compiled sidecar's header when that was compiled from exactly
    these TOML bytes (no document parsed), else from the loaded matrix."""
    try:
        with compiled_path(path).open("rb") as handle:
            header = json.loads(handle.readline())
        raw = path.read_bytes()
        collect = header["collect"]["libraries"]
        if header.get("source_size") == len(raw) and header.get("source_sha256") == _sha256(raw):
            return tuple(str(soname) for soname in collect)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return load(path).checked_libraries()


def _compiled(path: Path) -> tuple[dict[str, Any], str] | None:
    """The sidecar's document and the TOML's sha256 when the sidecar is current, else None."""
    state = sidecar(path)
    return (state.document, state.digest) if state.document is not None else None


@cache
def _schema_digest() -> str:
    """sha256 of the schema as installed (its module and the published file validation reads): a sidecar
    validated by another schema is not trusted."""
    try:
        module = Path(__file__).with_name("schema.py").read_bytes()
        return _sha256(module + packaged_file("compat_matrix.schema.json").read_bytes())
    except OSError:
        return ""


def _sha256(raw: bytes) -> str:
    """sha256 of the TOML. The built-in `_sha256` module, not hashlib: hashlib loads OpenSSL (~4 ms), more than
    hashing a 200 KB matrix takes."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,unused-ignore]  # CPython >= 3.12
        except ImportError:  # pragma: no cover - other interpreters
            from hashlib import sha256
    return sha256(raw).hexdigest()  # type: ignore[no-any-return]


def _restore_dates(doc: dict[str, Any]) -> None:
    doc["updated"] = dt.date.fromisoformat(doc["updated"])
    for table, key in (("aimet", "released"), ("torch", "released"), ("evidence", "date")):
        for entry in doc.get(table, []):
            if key in entry:
                entry[key] = dt.date.fromisoformat(entry[key])


def build(doc: Mapping[str, Any], *, path: str = "<memory>", sha256: str = "") -> Matrix:
    """Turn a schema-valid document into a Matrix, checking the rules that span fields."""
    problems: list[vocab.Problem] = []
    matrix = Matrix(
        path=path,
        sha256=sha256,
        matrix_version=doc["matrix_version"],
        updated=doc["updated"],
        description=doc.get("description"),
        aimet=tuple(_aimet(e) for e in doc.get("aimet", [])),
        torch=tuple(_torch(e, problems) for e in doc.get("torch", [])),
        cuda=tuple(_cuda(e) for e in doc.get("cuda", [])),
        rules=tuple(_rule(e, problems) for e in doc.get("rule", [])),
        evidence=tuple(_evidence(e) for e in doc.get("evidence", [])),
        constructs=tuple(_construct(e) for e in doc.get("construct", [])),
        apis=tuple(Api(e["id"], e["title"], e["port_note"], _sources(e)) for e in doc.get("api", [])),
        api_lines=tuple(_api_line(e) for e in doc.get("api_line", [])),
        system_libs=tuple(
            SystemLib(e["soname"], e["apt"], _sources(e), e["basis"], e.get("dnf"), e.get("pip"))
            for e in doc.get("system_lib", [])
        ),
        os_releases=tuple(
            OsRelease(e["distro"], e["version"], e["glibc"], _sources(e), e["basis"]) for e in doc.get("os_release", [])
        ),
        python_support=_python_support(doc.get("python_support", []), problems),
        requirements=tuple(
            Requirement(e["id"], e["summary"], dict(e["texts"]), _sources(e), e["basis"])
            for e in doc.get("requirement", [])
        ),
        probe_terms=tuple(ProbeTerm(e["kind"], e["id"], e["summary"], _sources(e)) for e in doc.get("probe_term", [])),
        model_families=tuple(_model_family(e) for e in doc.get("model_family", [])),
    )
    _check_evidence_refs(matrix, problems)
    _check_features(matrix, problems)
    _check_probe_terms(matrix, problems)
    _check_families(matrix, problems)
    if problems:
        raise MatrixError(path, problems)
    return matrix


def _check_evidence_refs(matrix: Matrix, problems: list[vocab.Problem]) -> None:
    """`evidence:<id>` sources must name an [[evidence]] record of the same matrix."""
    known = {e.id for e in matrix.evidence}
    entries: list[tuple[str, tuple[Source, ...]]] = [
        *((f"aimet {a.version}", a.sources) for a in matrix.aimet),
        *((f"torch {t.series!r}", t.sources) for t in matrix.torch),
        *((f"cuda {c.major}", c.sources) for c in matrix.cuda),
        *((f"construct {c.id!r}", c.sources) for c in matrix.constructs),
        *((f"requirement {r.id!r}", r.sources) for r in matrix.requirements),
        *((f"rule {r.id!r}", r.sources) for r in matrix.rules),
    ]
    for where, sources in entries:
        for source in sources:
            if source.ref.startswith(EVIDENCE_PREFIX) and source.ref[len(EVIDENCE_PREFIX) :] not in known:
                problems.append(vocab.Problem(f"{where} → sources", f"unknown evidence record {source.ref!r}"))


def _check_features(matrix: Matrix, problems: list[vocab.Problem]) -> None:
    """A model-scope rule's `model_feature` must name a [[construct]], so `--model` can look for it."""
    known = {c.id for c in matrix.constructs}
    for rule in matrix.rules:
        if rule.model_feature is not None and rule.model_feature not in known:
            problems.append(
                vocab.Problem(f"rule {rule.id!r} → model_feature", f"no [[construct]] with id {rule.model_feature!r}")
            )


def _check_probe_terms(matrix: Matrix, problems: list[vocab.Problem]) -> None:
    """A construct's `stand_in` and detector kinds must be words of the probe's vocabulary ([[probe_term]])."""
    models, detectors = matrix.probe_vocabulary("model"), matrix.probe_vocabulary("detector")
    for construct in matrix.constructs:
        where = f"construct {construct.id!r}"
        if construct.stand_in is not None and construct.stand_in not in models:
            problems.append(vocab.Problem(f"{where} → stand_in", _unknown("probe model", construct.stand_in, models)))
        for index, detector in enumerate(construct.detect):
            kind = str(detector.get("kind"))
            if kind not in detectors:
                where_kind = f"{where} → detect[{index}] → kind"
                problems.append(vocab.Problem(where_kind, _unknown("detector", kind, detectors)))


def _unknown(what: str, value: str, known: tuple[str, ...]) -> str:
    return f"unknown {what} {value!r} (known: {', '.join(known)})"


def _api_line(e: Mapping[str, Any]) -> ApiLine:
    return ApiLine(
        aimet=_specifier(e["aimet"]),
        apis=tuple(e["apis"]),
        default_api=e["default_api"],
        default_note=e["default_note"],
        sources=_sources(e),
        basis=e["basis"],
        env_selects=tuple(e.get("env_selects", ())),
        optional_apis=tuple(e.get("optional_apis", ())),
    )


def _python_support(entries: list[Mapping[str, Any]], problems: list[vocab.Problem]) -> PythonSupport | None:
    if len(entries) > 1:
        problems.append(vocab.Problem("python_support", "at most one [[python_support]] entry"))
    if not entries:
        return None
    e = entries[0]
    if e["prefer_from"] not in e["minors"]:
        problems.append(vocab.Problem("python_support → prefer_from", f"{e['prefer_from']!r} is not in `minors`"))
    return PythonSupport(tuple(e["minors"]), e["prefer_from"], _sources(e), e["basis"])


def _construct(e: Mapping[str, Any]) -> Construct:
    return Construct(
        id=e["id"],
        title=e["title"],
        summary=e["summary"],
        detect=tuple(dict(d) for d in e["detect"]),
        sources=_sources(e),
        stand_in=e.get("stand_in"),
        only_with=e.get("only_with"),
        produced_by=tuple(Producer(p["package"], p["note"]) for p in e.get("produced_by", [])),
    )


def _model_family(e: Mapping[str, Any]) -> ModelFamily:
    brings = tuple(
        FamilyBrings(
            b["construct"], b["when"], tuple(tuple(g) for g in b["symptoms"]), b["basis"], b["evidence"],
            tuple(b.get("rules", ())),
        )
        for b in e["brings"]
    )
    return ModelFamily(e["id"], e["title"], tuple(e["words"]), brings, _sources(e), tuple(e.get("packages", ())))


def _check_families(matrix: Matrix, problems: list[vocab.Problem]) -> None:
    """A family brings only constructs the matrix defines; its words are lower case (they match lowered text)."""
    known = {c.id for c in matrix.constructs}
    for family in matrix.model_families:
        where = f"model_family {family.id!r}"
        for b in family.brings:
            if b.construct not in known:
                problems.append(vocab.Problem(f"{where} → brings", f"unknown construct {b.construct!r}"))
            for rule_id in b.rules:
                rule = matrix.rule(rule_id)
                if rule is None or rule.scope != "model" or rule.model_feature != b.construct:
                    message = f"{rule_id!r} is no model rule of {b.construct}"
                    problems.append(vocab.Problem(f"{where} → brings", message))
        words = [*family.words, *(w for b in family.brings for g in b.symptoms for w in g)]
        for word in words:
            if word != word.lower() or not word.strip():
                problems.append(vocab.Problem(f"{where} → words", f"{word!r} must be lower case and not blank"))


def _sources(entry: Mapping[str, Any]) -> tuple[Source, ...]:
    return tuple(Source(s["kind"], s["ref"], s.get("note")) for s in entry[vocab.SOURCES_FIELD])


def _spec(value: str | None) -> SpecifierSet | None:
    return _specifier(value) if value is not None else None


@cache
def _specifier(text: str) -> SpecifierSet:
    """Specifier sets repeat across entries (`>=3.10`, `==2.1.*`); parse each text once."""
    return SpecifierSet(text)


def _aimet(e: Mapping[str, Any]) -> AimetRelease:
    v1 = e.get("v1")
    return AimetRelease(
        version=parse_version(e["version"]),
        released=e["released"],
        requires_python=_specifier(e["requires_python"]),
        apis=tuple(e["apis"]),
        sources=_sources(e),
        torch=_spec(e.get("torch")),
        torchvision=_spec(e.get("torchvision")),
        numpy=_spec(e.get("numpy")),
        cuda_major=e.get("cuda_major"),
        glibc_min=parse_version(e["glibc_min"]) if "glibc_min" in e else None,
        v1=V1Requirements(
            torch=_spec(v1.get("torch")),
            cuda_major=v1.get("cuda_major"),
            python=_spec(v1.get("python")),
            extra=v1.get("extra"),
        )
        if v1
        else None,
        python_wheels={
            minor: WheelVariant(
                glibc_min=parse_version(w["glibc_min"]) if "glibc_min" in w else None,
                cuda_major=w.get("cuda_major"),
                numpy=_spec(w.get("numpy")),
                wheel=w.get("wheel"),
            )
            for minor, w in e.get("python_wheels", {}).items()
        },
        system_libs=tuple(e.get("system_libs", ())),
        built_with_torch=parse_version(e["built_with_torch"]) if "built_with_torch" in e else None,
        wheel=e.get("wheel"),
        yanked=e.get("yanked"),
        notes=e.get("notes"),
        proposed=bool(e.get("proposed", False)),
    )


def _torch(e: Mapping[str, Any], problems: list[vocab.Problem]) -> TorchSeries:
    releases = tuple(parse_version(r) for r in e["releases"])
    where = f"torch {e['series']!r}"
    for release in releases:
        if release.series != e["series"]:
            problems.append(vocab.Problem(f"{where} → releases", f"{release} is not in series {e['series']}"))
        if str(release) not in e["torchvision"]:
            problems.append(vocab.Problem(f"{where} → torchvision", f"no torchvision pair for {release}"))
    for raw in e.get("proposed_releases", ()):
        if raw not in e["releases"]:
            problems.append(vocab.Problem(f"{where} → proposed_releases", f"{raw} is not one of its releases"))
    return TorchSeries(
        series=e["series"],
        releases=releases,
        python=tuple(e["python"]),
        torchvision=dict(e["torchvision"]),
        sources=_sources(e),
        released=e.get("released"),
        requires_python=_spec(e.get("requires_python")),
        cuda_variants=tuple(e.get("cuda_variants", ())),
        pypi_cuda=e.get("pypi_cuda"),
        sm=tuple(e.get("sm", ())),
        variant_sm={k: tuple(v) for k, v in e.get("variant_sm", {}).items()},
        notes=e.get("notes"),
        proposed=bool(e.get("proposed", False)),
        proposed_releases=tuple(parse_version(r) for r in e.get("proposed_releases", ())),
    )


def _cuda(e: Mapping[str, Any]) -> CudaDriver:
    return CudaDriver(
        major=e["major"], driver_min=parse_version(e["driver_min"]), sources=_sources(e), notes=e.get("notes")
    )


def _condition(fact: str, raw: str) -> Condition:
    if raw in vocab.PRESENCE:
        return Condition(fact, raw, presence=raw)
    if fact in vocab.CHOICE_FACTS:
        return Condition(fact, raw, values=tuple(v.strip() for v in raw.split("|")))
    return Condition(fact, raw, spec=_specifier(raw))


def _rule(e: Mapping[str, Any], problems: list[vocab.Problem]) -> Rule:
    where = f"rule {e['id']!r}"
    scope = e.get("scope", "environment")
    if scope == "model" and "model_feature" not in e:
        problems.append(vocab.Problem(f"{where} → model_feature", "required when scope = 'model'"))
    if e["kind"] == "good" and e["severity"] != "info":
        problems.append(vocab.Problem(f"{where} → severity", "known-good rules must have severity 'info'"))
    if not e["when"]:
        problems.append(vocab.Problem(f"{where} → when", "must name at least one fact"))
    signatures = []
    for i, s in enumerate(e.get("signature", [])):
        if "text" not in s and "regex" not in s:
            problems.append(vocab.Problem(f"{where} → signature[{i}]", "needs `text` or `regex`"))
        signatures.append(Signature(text=s.get("text"), regex=s.get("regex"), type=s.get("type"), note=s.get("note")))
    fixes = []
    for i, fx in enumerate(e.get("fix", [])):
        if fx["kind"] in ("upgrade", "pin") and not ("package" in fx and "spec" in fx):
            problems.append(vocab.Problem(f"{where} → fix[{i}]", f"a {fx['kind']} fix needs `package` and `spec`"))
        if fx["kind"] == "code" and "code" not in fx:
            problems.append(vocab.Problem(f"{where} → fix[{i}]", "a code fix needs `code`"))
        fixes.append(
            RuleFix(
                kind=fx["kind"],
                summary=fx["summary"],
                commands=tuple(fx.get("commands", ())),
                code=fx.get("code"),
                package=fx.get("package"),
                spec=_spec(fx.get("spec")),
            )
        )
    return Rule(
        id=e["id"],
        kind=e["kind"],
        severity=e["severity"],
        title=e["title"],
        summary=e["summary"],
        when=tuple(_condition(k, v) for k, v in e["when"].items()),
        sources=_sources(e),
        scope=scope,
        model_feature=e.get("model_feature"),
        details=e.get("details"),
        covers=tuple(e.get("covers", ())),
        triage_only=bool(e.get("triage_only", False)),
        cause=e.get("cause", "environment"),
        signatures=tuple(signatures),
        probes=tuple(
            ProbeMatch(model=p["model"], stage=p["stage"], status=p["status"], check=p.get("check"))
            for p in e.get("probe", [])
        ),
        fixes=tuple(fixes),
        basis=e.get("basis", "inferred"),
        measured_on=tuple(
            Measurement({k: m[k] for k in vocab.VERSION_FACTS if k in m}, m["evidence"])
            for m in e.get("measured_on", ())
        ),
    )


def _evidence(e: Mapping[str, Any]) -> EvidenceRecord:
    return EvidenceRecord(
        id=e["id"],
        date=e["date"],
        versions=dict(e["versions"]),
        platform=e["platform"],
        outcome=e["outcome"],
        summary=e["summary"],
        file=e.get("file"),
        cases=dict(e.get("cases", {})),
    )
