"""Facts × matrix → findings and a verdict: the static half of a diagnosis."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qatdoctor.diagnose.conditions import Outcome, evaluate_all
from qatdoctor.diagnose.judge import Evidence, OnModel, StandIns
from qatdoctor.diagnose.judge import rule_finding as judged
from qatdoctor.diagnose.requirements import Context, check_requirements
from qatdoctor.diagnose.rules import match_rules, rule_finding
from qatdoctor.knowledge.entries import AimetRelease, Matrix, Rule, TorchSeries
from qatdoctor.knowledge.versions import ParsedVersion, in_range, try_parse_version
from qatdoctor.records import Fact, Facts, FactState, Finding, Fix, Scope, Severity, Source, Status, Verdict


@dataclass(frozen=True)
class Evaluation:
    """Derived facts, the findings about them, and the known-good combinations they land on."""

    facts: Facts
    findings: tuple[Finding, ...]
    lands_on: tuple[str, ...]

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.findings)


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    """problems if any error failed; unknown if something that matters could not be decided (a caveat that likely
    applies included); else ok. Caveats never make problems: they are about models qatdoctor has not seen."""
    findings = tuple(findings)
    if any(f.severity is Severity.ERROR and f.failed for f in findings):
        return Verdict.PROBLEMS
    if any(f.counts_unknown for f in findings):
        return Verdict.UNKNOWN
    return Verdict.OK


def is_clean(evaluation: Evaluation) -> bool:
    """No error-severity failure, and at least one known-good combination matched."""
    failed = any(f.severity is Severity.ERROR and f.failed for f in evaluation.findings)
    return not failed and bool(evaluation.lands_on)


def cuda_from_local(local: str) -> str | None:
    """`cu121` → `12.1`, `cu130` → `13.0`; None for anything else."""
    digits = local[2:] if local.startswith("cu") else ""
    return f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() and len(digits) >= 3 else None


def derive_facts(facts: Facts, matrix: Matrix) -> Facts:
    """Add what follows from the facts: the effective AIMET API, and torch's CUDA build when only implied."""
    updates: dict[str, Fact] = {}
    aimet = _parsed(facts, "aimet-torch")
    if "aimet-api" not in facts.values:
        updates["aimet-api"] = _effective_api(facts, aimet, matrix)
    torch = _parsed(facts, "torch")
    if torch is not None and "cuda" not in facts.values:
        updates["cuda"] = _implied_cuda(torch, matrix)
    return facts.with_values(updates) if updates else facts


def _effective_api(facts: Facts, aimet: ParsedVersion | None, matrix: Matrix) -> Fact:
    if facts.get("aimet-torch").state is FactState.ABSENT:
        return Fact.absent("aimet-torch not installed", origin="derived")
    if aimet is None:
        return Fact.unknown("aimet-torch version unknown", origin="derived")
    line = matrix.api_line(aimet)
    if line is None:
        return Fact.unknown(f"no [[api_line]] of the matrix covers aimet-torch {aimet}", origin="derived")
    requested = facts.value("env:AIMET_DEFAULT_API")
    if requested is not None and requested in line.env_selects:
        return Fact.known(requested, origin="derived", detail=f"AIMET_DEFAULT_API={requested}")
    return Fact.known(line.default_api, origin="derived", detail=line.default_note)


def _implied_cuda(torch: ParsedVersion, matrix: Matrix) -> Fact:
    if torch.local == "cpu":
        return Fact.absent("CPU build of torch", origin="derived")
    if torch.local and (cuda := cuda_from_local(torch.local)):
        return Fact.known(cuda, origin="derived", detail=f"from torch's local tag +{torch.local}")
    if torch.local:  # a source or vendor build (+git1234, +nv24.05): PyPI's default says nothing about it
        return Fact.unknown(f"torch {torch.raw} is not a PyPI or PyTorch-index build: its CUDA build is not known")
    series = matrix.torch_series(torch.series)
    if series and series.pypi_cuda and (cuda := cuda_from_local(series.pypi_cuda)):
        return Fact.known(
            cuda, origin="inferred", detail=f"PyPI's default build of torch {torch.series} is {series.pypi_cuda}"
        )
    return Fact.unknown("torch's CUDA build is not known")


def _parsed(facts: Facts, name: str) -> ParsedVersion | None:
    value = facts.value(name)
    return try_parse_version(value) if value else None


def evaluate(facts: Facts, matrix: Matrix, *, python: str = "python") -> Evaluation:
    """All static findings for one environment."""
    facts = derive_facts(facts, matrix)
    aimet_version, torch_version = _parsed(facts, "aimet-torch"), _parsed(facts, "torch")
    # A GitHub-release build (`1.34.0.cu121`) is not the PyPI wheel the [[aimet]] entry describes.
    aimet = matrix.aimet_release(aimet_version) if aimet_version and not aimet_version.variant else None
    python_version = _parsed(facts, "python")
    aimet = aimet.for_python(python_version.series) if aimet and python_version else aimet
    series = matrix.torch_series(torch_version.series) if torch_version else None

    findings: list[Finding] = [
        *_presence(facts),
        *_coverage(facts, matrix, aimet_version, aimet, torch_version, series),
    ]
    requirement_findings = check_requirements(Context(facts, matrix, aimet, series))
    matches = match_rules(facts, matrix)
    # A matched rule explains the requirement check it covers; an undecided one says the same "unknown".
    covered = {c for m in matches if m.outcome.value and m.rule.kind == "bad" for c in m.rule.covers}
    undecided = {c for m in matches if m.outcome.value is None and m.rule.kind == "bad" for c in m.rule.covers}
    findings += [
        f
        for f in requirement_findings
        if not (f.id in covered and f.status is Status.FAIL) and not (f.id in undecided and f.status is Status.UNKNOWN)
    ]
    for m in (m for m in matches if m.rule.kind == "bad"):
        found = judged(rule_evidence(m.rule, m.outcome, facts, matrix), python)
        if found is not None:
            findings.append(found)

    proposed = _proposed(aimet, series, torch_version)
    # A set that needs an entry nobody reviewed (`proposed = true`) is never known-good.
    good = [m for m in matches if m.rule.kind == "good" and m.outcome.value] if not proposed else []
    lands_on = [m.rule.id for m in good] + (_declared_good(aimet, torch_version) if not proposed else [])
    findings += [rule_finding(m.rule, m.outcome, facts=facts) for m in good]
    findings += [_outside("coverage.proposed", f"{', '.join(proposed)}: proposed by `matrix refresh`, not "
                          "reviewed", "Outside reviewed coverage: not reported as good.")] if proposed else []
    findings += _untested(findings, aimet, torch_version, lands_on) if not proposed else []
    return Evaluation(facts, tuple(findings), tuple(lands_on))


def _proposed(aimet: AimetRelease | None, series: TorchSeries | None, torch: ParsedVersion | None) -> list[str]:
    """The entries of these versions that `matrix refresh` proposed and nobody reviewed yet."""
    out = [f"aimet-torch {aimet.version}"] if aimet is not None and aimet.proposed else []
    return out + ([f"torch {torch}"] if series is not None and torch is not None and series.is_proposed(torch) else [])


def rule_evidence(
    rule: Rule,
    outcome: Outcome,
    facts: Facts,
    matrix: Matrix,
    *,
    stand_ins: StandIns | None = None,
    model: OnModel | None = None,
    headline: str | None = None,
) -> Evidence:
    """What the judge needs about one rule: the facts' outcome, the construct's context here, and what the probe
    and the user's model showed."""
    can_occur, likely = construct_context(rule.model_feature if rule.scope == "model" else None, facts, matrix)
    return Evidence(rule, outcome, facts, stand_ins, model, can_occur, likely, headline=headline)


def construct_context(construct_id: str | None, facts: Facts, matrix: Matrix) -> tuple[bool, str | None]:
    """Whether a construct can occur here (its only source is not absent), and which installed package makes it
    likely."""
    construct = matrix.construct(construct_id) if construct_id else None
    if construct is None:
        return True, None
    if construct.only_with and facts.get(construct.only_with).state is FactState.ABSENT:
        return False, None
    producers = [p for p in construct.produced_by if facts.get(p.package).is_known]
    likely = "; ".join(f"{p.package} {facts.value(p.package)} is installed: {p.note}" for p in producers)
    return True, likely or None


def caveat_context(finding: Finding, facts: Facts, matrix: Matrix) -> Finding | None:
    """A caveat that is not a rule's (a stand-in's unexplained failure) in its context: marked as likely when an
    installed package produces its construct, dropped when the construct cannot occur here."""
    if finding.scope is not Scope.CAVEAT:
        return finding
    can_occur, likely = construct_context(finding.construct, facts, matrix)
    if not can_occur:
        return None
    return finding._replace(likely=likely) if likely else finding


def could_be_good(facts: Facts, matrix: Matrix) -> bool:
    """Whether these facts can land on a known-good combination at all: a cheap filter before `evaluate`."""
    facts = derive_facts(facts, matrix)
    aimet_version, torch_version = _parsed(facts, "aimet-torch"), _parsed(facts, "torch")
    aimet = matrix.aimet_release(aimet_version) if aimet_version else None
    if _proposed(aimet, matrix.torch_series(torch_version.series) if torch_version else None, torch_version):
        return False
    if _declared_good(aimet, torch_version):
        return True
    return any(r.kind == "good" and evaluate_all(r.when, facts).value for r in matrix.rules)


def _declared_good(aimet: AimetRelease | None, torch: ParsedVersion | None) -> list[str]:
    """A release is known-good with the torch it pins exactly, or (2.x) the torch its wheel was built with."""
    if aimet is None or torch is None:
        return []
    if aimet.torch is not None and any(s.operator == "==" for s in aimet.torch) and in_range(torch, aimet.torch):
        return [f"aimet-torch {aimet.version} pins torch{aimet.torch}"]
    built = aimet.built_with_torch
    if built is not None and built.series == torch.series:
        return [f"aimet-torch {aimet.version} wheel was built with torch {built}"]
    return []


def _presence(facts: Facts) -> list[Finding]:
    """A missing aimet-torch or torch is a plain problem with the install that fixes it (a known-good set, made
    concrete by the diagnosis); one that could not be read is unknown."""
    out = []
    for name in ("aimet-torch", "torch"):
        fact = facts.get(name)
        if fact.state is FactState.ABSENT:
            out.append(
                Finding(
                    id=f"env.{name}-missing",
                    title=f"{name} is not installed in this environment",
                    severity=Severity.ERROR,
                    status=Status.FAIL,
                    origin="environment",
                    summary=f"There is no AIMET pipeline to diagnose without {name}. Install a known-good set (or "
                    "point --python at the environment you train in).",
                    fixes=(Fix("install", f"Install a known-good set with {name}.", package=name, spec=">=0"),),
                )
            )
        elif fact.state is FactState.UNKNOWN:
            out.append(
                Finding(
                    id=f"env.{name}-missing",
                    title=f"{name}: {fact.describe()}",
                    severity=Severity.WARNING,
                    status=Status.UNKNOWN,
                    origin="environment",
                    summary=f"Nothing to check for {name}; `qatdoctor pin` prints a known-good set to install.",
                )
            )
    return out


def _coverage(
    facts: Facts,
    matrix: Matrix,
    aimet_version: ParsedVersion | None,
    aimet: AimetRelease | None,
    torch_version: ParsedVersion | None,
    series: TorchSeries | None,
) -> list[Finding]:
    """Versions the matrix does not know are 'outside coverage', never silently good."""
    out: list[Finding] = []
    for name, version in (("aimet-torch", aimet_version), ("torch", torch_version)):
        raw = facts.value(name)
        if raw and version is None:
            out.append(
                _outside(
                    f"coverage.{name}",
                    f"{name} version {raw!r} is not a PEP 440 version",
                    "qatdoctor cannot place it in any range; every rule about it is undecided.",
                )
            )
    if aimet_version is not None and aimet_version.variant:
        out.append(_outside(
            "coverage.aimet-torch",
            f"aimet-torch {aimet_version.raw} is a GitHub-release build ({aimet_version.variant})",
            "The matrix describes the PyPI wheels; this build's own pins are not checked (rules still apply).",
        ))  # fmt: skip
    elif aimet_version is not None and aimet is None:
        newest = max(a.version.comparable for a in matrix.aimet) if matrix.aimet else None
        beyond = newest is not None and aimet_version.comparable > newest
        out.append(_outside(
            "coverage.aimet-torch",
            f"aimet-torch {aimet_version} is {'newer than anything' if beyond else 'a release'} the matrix "
            f"{'knows' if beyond else 'does not know'} (matrix {matrix.matrix_version}, newest {newest})",
            "Outside known coverage: not reported as good. Point --matrix at a newer matrix, or run the probe.",
        ))  # fmt: skip
    elif aimet is not None and aimet.yanked:
        out.append(Finding(
            id="coverage.yanked", title=f"aimet-torch {aimet.version} was yanked from PyPI: {aimet.yanked}",
            severity=Severity.WARNING, origin="matrix", summary="Install a non-yanked release.",
            sources=aimet.sources,
        ))  # fmt: skip
    if torch_version is not None:
        known = {str(r.comparable) for s in matrix.torch for r in s.releases}
        if series is None or str(torch_version.comparable) not in known:
            newest = max((r.comparable for s in matrix.torch for r in s.releases), default=None)
            out.append(_outside(
                "coverage.torch",
                f"torch {torch_version} is not a release the matrix knows (newest known: {newest})",
                "Outside known coverage: not reported as good.",
            ))  # fmt: skip
    return out


def _outside(check_id: str, title: str, summary: str) -> Finding:
    return Finding(
        id=check_id,
        title=title,
        severity=Severity.WARNING,
        status=Status.UNKNOWN,
        origin="coverage",
        summary=summary,
        fixes=(Fix("config", "use a newer matrix: qatdoctor --matrix PATH (or $QATDOCTOR_MATRIX)"),),
    )


def _untested(
    findings: list[Finding], aimet: AimetRelease | None, torch: ParsedVersion | None, lands_on: list[str]
) -> list[Finding]:
    if aimet is None or torch is None or lands_on:
        return []
    if any(f.failed and f.severity is Severity.ERROR for f in findings):
        return []
    return [
        Finding(
            id="coverage.untested-combination",
            title=f"aimet-torch {aimet.version} with torch {torch} is not a known-good combination",
            severity=Severity.WARNING,
            status=Status.UNKNOWN,
            origin="coverage",
            summary="No rule marks it bad, but nothing marks it good either; run the probe to find out.",
            sources=(Source("docs", "docs/matrix.md#the-matrix", "how known-good combinations are recorded"),),
        )
    ]
