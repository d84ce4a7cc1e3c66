"""Model families a report names (RTMDet, timm, ultralytics...) → the likely findings their constructs bring.

A report without a matched error ("Getting this error when I am trying to train RTM-det with QAT") still names
its model and its versions. `[[model_family]]` says which constructs such models carry and which words of a
report show the failure; a model-scope rule about that construct whose versions hold becomes a *likely*
finding: a caveat, never a failure, with the rule's fix and the command that confirms it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from qatdoctor.diagnose.conditions import evaluate_all
from qatdoctor.diagnose.rules import rule_finding
from qatdoctor.explain.extract import lowered
from qatdoctor.knowledge.entries import FamilyBrings, Matrix, ModelFamily
from qatdoctor.records import Facts, Finding, Status

CARRY = 64  # characters of an unfinished line kept so a word split by a read is still found
HEAD = 1 << 20  # words are read from the start of the input: where a report or a log's config names the model
CONFIRM = (
    "To confirm it, run `qatdoctor check --model FILE.py:FUNC` in the training environment (FUNC returns the "
    "model, or (model, example_input)): it runs your model through prepare_model, QuantSim and one QAT step. "
    "Or paste the full traceback into `qatdoctor explain`."
)


class WordSpotter:
    """The first line on which each of `words` (lower case) occurs, read from the first `head` characters."""

    def __init__(self, words: Iterable[str], head: int = HEAD) -> None:
        self._words = tuple(sorted(set(words)))
        self.first: dict[str, int] = {}
        self._left = head
        self._line = 1
        self._carry = ""

    @classmethod
    def of(cls, matrix: Matrix) -> WordSpotter:
        return cls(w for family in matrix.model_families for w in family_words(family))

    def feed(self, text: str) -> None:
        if self._left <= 0 or len(self.first) == len(self._words):
            return
        self._left -= len(text)
        low = lowered(self._carry + text)
        for word in self._words:
            if word not in self.first and (at := low.find(word)) != -1:
                self.first[word] = self._line + low.count("\n", 0, at)
        end = low.rfind("\n")
        self._line += low.count("\n")
        self._carry = (self._carry + text)[end + 1 :][-CARRY:]


def family_words(family: ModelFamily) -> set[str]:
    return {*family.words, *(w for b in family.brings for group in b.symptoms for w in group)}


def family_findings(
    first: Mapping[str, int], matrix: Matrix, facts: Facts, python: str, from_log: Sequence[Finding]
) -> list[Finding]:
    """Likely findings for the families the text names, when no matched error already explains it."""
    if any(f.status is Status.FAIL for f in from_log):
        return []
    found: dict[str, Finding] = {}
    for family in matrix.model_families:
        named = sorted((first[w], w) for w in family.words if w in first)
        if not named:
            continue
        line, word = named[0]
        for brings in family.brings:
            if not all(any(w in first for w in group) for group in brings.symptoms):
                continue
            for rule in matrix.rules:
                if rule.kind != "bad" or rule.scope != "model" or rule.model_feature != brings.construct:
                    continue
                if brings.rules and rule.id not in brings.rules:
                    continue
                outcome = evaluate_all(rule.when, facts)
                if outcome.value is not True or rule.id in found:
                    continue
                seen = f"line {line}: the input names {word!r} ({family.title})"
                base = rule_finding(rule, outcome, python=python, extra_evidence=(seen,), facts=facts)
                found[rule.id] = base._replace(
                    origin="family", summary=_summary(family, brings, word, outcome.matched, rule.summary, matrix),
                    likely=f"{seen}; its models carry {brings.construct} when {brings.when} [{brings.basis}]",
                    headline=seen,
                )  # fmt: skip
    return list(found.values())


def _summary(
    family: ModelFamily, brings: FamilyBrings, word: str, matched: Sequence[str], rule_summary: str, matrix: Matrix
) -> str:
    construct = next((c.title for c in matrix.constructs if c.id == brings.construct), brings.construct)
    return (
        f"Likely cause (no error text matched): the input names {word!r}, {family.title}; such models carry a "
        f"{construct} when {brings.when} ({brings.basis}: {brings.evidence}). The stated versions are in this "
        f"known failure's range ({'; '.join(matched)}). {rule_summary} {CONFIRM}"
    )
