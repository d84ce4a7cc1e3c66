"""`--assume NAME=VALUE`: facts given by the user instead of (or on top of) collected ones."""

from __future__ import annotations

from collections.abc import Iterable

from qatdoctor.errors import InputError
from qatdoctor.knowledge.versions import parse_version
from qatdoctor.knowledge.vocab import CHOICE_FACTS, GPU, VERSION_FACTS, is_library_fact, library_fact
from qatdoctor.records import Fact, Facts, Gpu

ALIASES = {
    "aimet": "aimet-torch", "python-version": "python", "py": "python", "cuda-version": "cuda",
    "nvidia-driver": "driver", "api": "aimet-api", "aimet-default-api": "aimet-api",
    "liblapacke": "lib:liblapacke.so.3", "lapacke": "lib:liblapacke.so.3",
    "libcublas": "lib:libcublas.so.12", "libcublas12": "lib:libcublas.so.12", "cublas": "lib:libcublas.so.12",
}  # fmt: skip
OTHER_NAMES = (*CHOICE_FACTS, GPU)
ABSENT_WORDS = ("absent", "none", "no", "missing", "not-installed")
PRESENT_WORDS = ("present", "yes", "installed")
ASSUMED = "assumed"


def canonical_name(raw: str) -> str:
    """`aimet_torch` → `aimet-torch`, aliases resolved; raise InputError for names qatdoctor does not know."""
    if is_library_fact(raw.strip()) or is_library_fact(library_fact(raw.strip())):  # lib:<soname> or <soname>
        return raw.strip() if raw.strip().startswith("lib:") else library_fact(raw.strip())
    name = raw.strip().lower().replace("_", "-")
    name = ALIASES.get(name, name)
    if name not in VERSION_FACTS and name not in OTHER_NAMES and not is_library_fact(name):
        known = ", ".join((*VERSION_FACTS, *CHOICE_FACTS, "liblapacke", "libcublas12", "lib:<soname>", GPU))
        raise InputError(f"--assume: unknown name {raw!r} (known: {known})")
    return name


def parse_assumption(item: str) -> tuple[str, Fact | Gpu | None]:
    """One `NAME=VALUE` → (canonical name, fact); for `gpu` the value is a Gpu, or None for 'no GPU'."""
    name_part, sep, value = item.partition("=")
    if not sep or not name_part.strip() or not value.strip():
        raise InputError(f"--assume expects NAME=VALUE, got {item!r}")
    name, value = canonical_name(name_part), value.strip()
    lowered = value.lower()
    if name == GPU:
        if lowered in ABSENT_WORDS:
            return name, None
        capability = lowered.removeprefix("sm_").removeprefix("sm")
        if capability.isdigit() and len(capability) in (2, 3):
            capability = f"{capability[:-1]}.{capability[-1]}"
        parse_version(capability, what="GPU compute capability")
        return name, Gpu(name=f"GPU (assumed, compute capability {capability})", compute_capability=capability)
    if name.startswith("lib:"):
        if lowered in ABSENT_WORDS:
            return name, Fact.absent("assumed absent", origin=ASSUMED)
        if lowered in PRESENT_WORDS:
            return name, Fact.known("present", origin=ASSUMED)
        raise InputError(f"--assume {name_part}: expected present or absent, got {value!r}")
    if name == "aimet-api":
        if lowered not in ("v1", "v2"):
            raise InputError(f"--assume aimet-api: expected v1 or v2, got {value!r}")
        return name, Fact.known(lowered, origin=ASSUMED)
    if lowered in ABSENT_WORDS or (name == "cuda" and lowered == "cpu"):
        reason = "CPU build of torch (assumed)" if name == "cuda" else "assumed not installed"
        return name, Fact.absent(reason, origin=ASSUMED)
    parsed = parse_version(value, what=f"{name} version")
    return name, Fact.known(parsed.raw, origin=ASSUMED)


def apply_assumptions(facts: Facts, items: Iterable[str]) -> Facts:
    """Overlay `--assume` values; a new torch drops the collected CUDA build so it is re-derived."""
    updates: dict[str, Fact] = {}
    gpus: list[Gpu] = []
    no_gpu = False
    given: dict[str, str] = {}
    for item in items:
        name, value = parse_assumption(item)
        stated = item.partition("=")[2].strip()
        if name != GPU and given.setdefault(name, stated) != stated:  # several GPUs are fine; two torches are not
            raise InputError(
                f"--assume {name} given twice ({given[name]!r} and {stated!r}): say which one",
                hint="each name may be assumed once (gpu may be repeated, one per GPU)",
            )
        if name == GPU:
            if value is None:
                no_gpu = True
            elif isinstance(value, Gpu):
                gpus.append(value)
        elif isinstance(value, Fact):
            updates[name] = value
    if not updates and not gpus and not no_gpu:
        return facts
    values = dict(facts.values)
    if "torch" in updates and "cuda" not in updates:
        values.pop("cuda", None)
    if "aimet-torch" in updates and "aimet-api" not in updates:
        values.pop("aimet-api", None)
    values.update(updates)
    result = Facts(values, facts.gpus, facts.gpus_reason)
    if gpus or no_gpu:
        result = result.with_gpus(tuple(gpus))
    return result


def what_if_facts(items: Iterable[str], libraries: Iterable[str] = ()) -> Facts:
    """Facts for a hypothetical environment: only what `--assume` states; everything else (the versions and the
    `libraries` the matrix checks) is unknown."""
    items = list(items)
    if not items:
        raise InputError("resolve needs at least one --assume NAME=VALUE (e.g. --assume aimet-torch=1.32.2)")
    base = Facts(
        {name: Fact.unknown("not given (add --assume)") for name in (*VERSION_FACTS, *map(library_fact, libraries))
         if name != "cuda"},
        gpus=None,
        gpus_reason="not given (add --assume gpu=9.0)",
    )  # fmt: skip
    return apply_assumptions(base, items)
