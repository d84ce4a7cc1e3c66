"""One environment to build and probe (aimet-torch × torch × Python), checked against the matrix first.

Shared by `verify` and `sweep`: the pins to install, the reasons a combination cannot be installed at all
(no wheel for that Python, an exact torch pin), and the PyTorch index a `+cuXXX` build needs.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from packaging.version import Version

from qatdoctor.diagnose.requirements import wheel_pythons
from qatdoctor.knowledge.entries import AimetRelease, Matrix, TorchSeries
from qatdoctor.knowledge.versions import ParsedVersion, in_range, parse_version
from qatdoctor.lab.envbuild import EnvBuildError, EnvSpec
from qatdoctor.lab.evidence import cell_id
from qatdoctor.recommend.commands import CUDA_INDEX
from qatdoctor.records import Fact, Facts


class IndexUnreachableError(EnvBuildError):
    """The build needs a package index (download.pytorch.org) that cannot be reached from here."""


@dataclass(frozen=True)
class CellPlan:
    """The pins of one environment: what `pip install` gets, on which Python minor."""

    aimet: str
    torch: str
    python: str
    torchvision: str | None = None
    numpy: str | None = None
    index_url: str | None = None
    system_libs: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """`aimet-2.42.0-torch-2.14.1-py311`, the evidence cell id."""
        return cell_id({"aimet-torch": self.aimet, "torch": self.torch, "python": self.python})

    def requirements(self) -> tuple[str, ...]:
        """Installer arguments: the pins, extra requirements, and the extra index when one is needed."""
        reqs = [f"aimet-torch=={self.aimet}", f"torch=={self.torch}"]
        if self.torchvision:
            reqs.append(f"torchvision=={self.torchvision}")
        if self.numpy:
            reqs.append(f"numpy{self.numpy}" if self.numpy[:1] in "<>=!~" else f"numpy=={self.numpy}")
        reqs += self.extra
        if self.index_url:
            reqs += ["--extra-index-url", self.index_url]
        return tuple(reqs)

    def spec(self, prefix: str = "") -> EnvSpec:
        """The EnvSpec; its name carries a digest of the pins, so a changed plan never reuses an old env."""
        body = {"python": self.python, "requirements": list(self.requirements()), "libs": list(self.system_libs)}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        return EnvSpec(
            name=f"{prefix}{self.id}-{digest}",
            python=self.python,
            requirements=self.requirements(),
            system_libs=self.system_libs,
        )

    def facts(self) -> Facts:
        """The planned versions as facts (for a cell whose environment could not be built)."""
        values = {"aimet-torch": self.aimet, "torch": self.torch, "python": self.python}
        if self.torchvision:
            values["torchvision"] = self.torchvision
        return Facts({k: Fact.known(v, origin="planned") for k, v in values.items()})

    def describe(self) -> str:
        return " ".join(r for r in self.requirements() if not r.startswith("--")) + f" on Python {self.python}"


def plan_cell(
    matrix: Matrix,
    aimet: str,
    torch: str,
    python: str,
    *,
    torchvision: str | None = None,
    numpy: str | None = None,
    extra: tuple[str, ...] = (),
) -> CellPlan:
    """Pins for one combination: torchvision paired from the matrix, PyPI's default build unless a local tag
    names another (then the PyTorch index), and the system libraries the aimet-torch release needs."""
    torch_version = parse_version(torch, what="torch version")
    series = matrix.torch_series(torch_version.series)
    local = torch_version.version.local
    index = None
    pinned_torch = str(torch_version.comparable)
    if local is not None and (series is None or local != series.pypi_cuda):
        index = f"{CUDA_INDEX}/{local}"
        pinned_torch = f"{torch_version.comparable}+{local}"
    if torchvision is not None and index is None:  # PyPI's default build carries no local tag
        torchvision = str(parse_version(torchvision, what="torchvision version").comparable)
    if torchvision is None and series is not None:
        paired = series.torchvision.get(str(torch_version.comparable))
        torchvision = f"{paired}+{local}" if paired and index else paired
    release = _release(matrix, aimet)
    libs = release.for_python(python).system_libs if release else ()
    return CellPlan(
        aimet=str(parse_version(aimet, what="aimet-torch version")),
        torch=pinned_torch,
        python=python,
        torchvision=torchvision,
        numpy=numpy,
        index_url=index,
        system_libs=tuple(libs),
        extra=extra,
    )


def _release(matrix: Matrix, aimet: str) -> AimetRelease | None:
    return matrix.aimet_release(parse_version(aimet, what="aimet-torch version"))


def blockers(matrix: Matrix, plan: CellPlan) -> list[str]:
    """Why this combination cannot be installed, per the matrix (empty: it can, or the matrix cannot tell)."""
    out: list[str] = []
    release = _release(matrix, plan.aimet)
    torch = parse_version(plan.torch)
    series = matrix.torch_series(torch.series)
    if release is not None:
        out += _aimet_blockers(release, plan.python, torch)
    if series is not None:
        out += _torch_blockers(series, plan.python)
    return out


def _aimet_blockers(release: AimetRelease, python: str, torch: ParsedVersion) -> list[str]:
    out = []
    if release.yanked:
        out.append(f"aimet-torch {release.version} was yanked from PyPI ({release.yanked})")
    if not release.requires_python.contains(Version(f"{python}.0"), prereleases=True):
        out.append(f"aimet-torch {release.version} requires Python {release.requires_python}")
    else:
        minors = wheel_pythons(release)
        if minors is not None and python not in minors:
            out.append(
                f"aimet-torch {release.version} has no wheel for Python {python} (only {', '.join(sorted(minors))})"
            )
    if release.torch is not None and not in_range(torch, release.torch):
        out.append(f"aimet-torch {release.version} requires torch{release.torch}")
    return out


def _torch_blockers(series: TorchSeries, python: str) -> list[str]:
    out = []
    if python not in series.python:
        out.append(f"torch {series.series} has no wheel for Python {python} (wheels: {', '.join(series.python)})")
    return out


def is_known_torch(matrix: Matrix, torch: str) -> bool:
    """Whether the matrix lists this torch release (an unknown one is tried, with a warning)."""
    version = parse_version(torch, what="torch version")
    return any(r.comparable == version.comparable for s in matrix.torch for r in s.releases)


def python_choices(matrix: Matrix, aimet: str, torch: str) -> list[str]:
    """Python minors the combination installs on per the matrix, in the order of preference its
    [[python_support]] states (the oldest from 3.10 up, then newer ones, then older ones)."""
    ordered = matrix.python_support.by_preference() if matrix.python_support is not None else ()
    return [m for m in ordered if not blockers(matrix, plan_cell(matrix, aimet, torch, m))]


def check_index(url: str | None, timeout: float = 8.0) -> None:
    """Raise IndexUnreachableError when the extra index a build needs does not answer."""
    if url is None:
        return
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/", method="HEAD"), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise IndexUnreachableError(
            f"this set needs the PyTorch index {url}, which cannot be reached from here ({reason})",
            hint="run where download.pytorch.org is reachable, or pick a recommendation without a +cuXXX build "
            "(--pick N)",
        ) from None
