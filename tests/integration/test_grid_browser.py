"""The grid page (`qatdoctor matrix grid --html`) in a real headless Chromium (Debian's `chromium`, driven by
Playwright): the known cells, a click opening the right rule, the keyboard, the filters, no network, a screenshot.

Fails (never skips) without Chromium or Playwright when QATDOCTOR_REQUIRE_ENVS=1; scripts/test installs both.
Screenshots go to $QATDOCTOR_ARTIFACTS, else to pytest's tmp dir.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from qatdoctor.authoring import grid
from qatdoctor.authoring.grid import Filters
from qatdoctor.knowledge.load import load as load_matrix
from qatdoctor.render import grid_html

pytestmark = pytest.mark.integration
load = cache(load_matrix)
SILU_ROWS = [f"2.{minor}.0" for minor in range(10)]


def _need(message: str) -> None:
    if os.environ.get("QATDOCTOR_REQUIRE_ENVS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str:
    found = os.environ.get("QATDOCTOR_CHROMIUM") or next(
        (p for name in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(name))), None
    )
    if not found:
        _need("no Chromium for the grid page test (Debian: apt-get install chromium; or set QATDOCTOR_CHROMIUM)")
    assert found is not None
    return found


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("QATDOCTOR_ARTIFACTS")
    path = Path(where) if where else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page_url(artifacts: Path) -> str:
    target = artifacts / "grid.html"
    grid_html.write(target, load())
    return target.resolve().as_uri()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, page_url: str) -> Iterator[Any]:
    """A fresh page; afterwards: no script errors, and nothing fetched from anywhere but the file itself."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    fetched: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("request", lambda request: fetched.append(request.url))
    tab.goto(page_url)
    tab.wait_for_selector("html[data-ready='1']", timeout=15_000)
    yield tab
    context.close()
    assert not errors
    assert all(url.startswith(("file:", "data:", "about:")) for url in fetched), fetched


def td(aimet: str, series: str) -> str:
    return f"td[data-aimet='{aimet}'][data-torch='{series}']"


def states(tab: Any) -> list[str]:
    script = "els => els.map(e => e.dataset.state + ' ' + e.dataset.reason + ' ' + (e.dataset.flagged ? '!' : ''))"
    return tab.eval_on_selector_all("#grid td", script)  # type: ignore[no-any-return]


def expected(filters: Filters) -> list[str]:
    return [
        f"{c.state.value} {c.plan.outcome.reason or ''} {'!' if c.flagged else ''}"
        for c in grid.iter_cells(grid.build(load(), filters))
    ]


def test_known_cells_show_what_the_matrix_says(page: Any) -> None:
    page.select_option("#f-python", "3.10")
    assert page.get_attribute(td("1.32.2", "2.2"), "data-state") == "measured"
    assert page.inner_text(td("1.32.2", "2.2")).strip() == "✓measured"
    bad = page.locator(td("2.42.0", "2.2"))
    assert (bad.get_attribute("data-state"), bad.get_attribute("data-reason")) == ("bad", "import")
    assert "known-bad (import)" in (bad.get_attribute("aria-label") or "")
    page.select_option("#f-python", "best")
    page.select_option("#f-construct", "silu-activation")
    flagged = page.eval_on_selector_all("#grid td.flagged", "els => [...new Set(els.map(e => e.dataset.aimet))]")
    assert flagged == SILU_ROWS
    assert page.locator(f"{td('2.0.0', '2.2')} sup.flag").count() == 1
    assert page.locator("#grid td.flagged").count() == len(SILU_ROWS) * len(load().torch)


def test_a_click_opens_the_right_rule(page: Any) -> None:
    page.click(td("2.42.0", "2.2"))
    assert page.is_visible("#panel")
    assert page.get_attribute("#panel .rule.decides", "data-rule") == "aimet-2.42-torch-2.2-import-error"
    assert page.get_attribute("#panel-state", "data-state") == "bad"
    ours = grid.build(load())
    cell = next(c for c in grid.iter_cells(ours) if (c.aimet, c.series) == ("2.42.0", "2.2"))
    assert page.inner_text("#panel-pip") == cell.plan.pip
    assert page.locator("#panel li#ev-probe-aimet-2\\.42\\.0-torch-2\\.2\\.2-py311").count() == 1
    page.click(td("1.32.2", "2.2"))  # another cell: the panel follows, sources are links
    assert "aimet-torch 1.32.2 × torch 2.2.2" in page.inner_text("#panel-title")
    assert page.get_attribute("#panel .rule.decides", "data-rule") == "good-aimet-1.32.2-1.35.0-torch-2.2.2-py310"
    assert page.locator("#panel a[href='https://github.com/qualcomm/aimet/pull/3335']").count() >= 1
    assert "cell=1.32.2/2.2" in page.url
    # a caveat's evidence link shows that run's record in the panel, and the URL keeps the view
    page.click("#panel .rule[data-rule='bn-subclass-qat-crash-v1'] a[data-ev='probe-aimet-1.32.2-torch-2.2.2-py310']")
    record = page.locator("[id='ev-probe-aimet-1.32.2-torch-2.2.2-py310']")
    assert record.is_visible() and "2026-" in record.inner_text()
    assert page.url.endswith("#cell=1.32.2/2.2")


def test_keyboard(page: Any) -> None:
    page.focus(td("1.32.2", "2.2"))
    page.keyboard.press("Enter")
    assert page.is_visible("#panel")
    assert page.evaluate("document.activeElement.id") == "panel-title"
    page.keyboard.press("Escape")
    assert page.is_hidden("#panel")
    assert page.evaluate("[document.activeElement.dataset.aimet, document.activeElement.dataset.torch]") == [
        "1.32.2",
        "2.2",
    ]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # visible focus
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("[document.activeElement.dataset.aimet, document.activeElement.dataset.torch]") == [
        "1.33.0",
        "2.3",
    ]
    assert page.locator("#grid td[tabindex='0']").count() == 1  # one tab stop: the grid is a roving-focus widget
    page.keyboard.press(" ")
    assert "aimet-torch 1.33.0 × torch 2.3.1" in page.inner_text("#panel-title")
    page.keyboard.press("Escape")
    assert page.is_hidden("#panel")


def test_filters_change_the_cells(page: Any) -> None:
    assert page.get_attribute(td("2.42.0", "2.14"), "data-state") == "measured"  # best: Python 3.11, probed
    page.select_option("#f-python", "3.10")
    assert page.get_attribute(td("2.42.0", "2.14"), "data-state") == "vendor"  # 3.10: the build torch only
    assert page.get_attribute(td("2.42.0", "2.15"), "data-reason") == "Python"
    page.click(td("2.42.0", "2.15"))  # the page words a missing Python as the terminal grid does
    ours = next(
        c for c in grid.iter_cells(grid.build(load(), Filters("3.10"))) if (c.aimet, c.series) == ("2.42.0", "2.15")
    )
    assert ours.plan.outcome.note and ours.plan.outcome.note in page.inner_text("#panel-body")
    page.keyboard.press("Escape")
    page.fill("#f-driver-version", "535.104.05")
    assert page.inner_text("#build-15").strip() == "cu126~"
    assert page.inner_text("#build-16").strip() == "no build^"
    assert page.locator("#grid td.too-old").count() == len(load().aimet)
    page.click(td("2.42.0", "2.14"))
    assert page.inner_text("#panel-pip").endswith("--extra-index-url https://download.pytorch.org/whl/cu126")
    assert '"torch==2.14.1+cu126"' in page.inner_text("#panel-pip")
    assert page.input_value("#f-driver") == "2"  # the tier the typed driver falls in


@pytest.mark.parametrize(
    ("python", "driver", "construct"),
    [("best", "", ""), ("3.10", "535.104.05", "silu-activation"), ("3.11", "470.82", "bn-subclass")],
)
def test_every_cell_matches_the_terminal_grid(page: Any, python: str, driver: str, construct: str) -> None:
    page.select_option("#f-python", python)
    page.fill("#f-driver-version", driver)
    page.select_option("#f-construct", construct)
    filters = Filters(None if python == "best" else python, driver or None, construct or None)
    assert states(page) == expected(filters)


def test_headers_stay_in_view(page: Any) -> None:
    page.mouse.wheel(600, 1200)
    page.wait_for_function("window.scrollY > 500 && window.scrollX > 100")
    assert abs(page.locator("#col-3").bounding_box()["y"]) < 1
    assert abs(page.locator("#row-40").bounding_box()["x"]) < 1


def test_screenshot(page: Any, artifacts: Path, browser: Any, page_url: str) -> None:
    page.select_option("#f-construct", "silu-activation")
    page.click(td("2.0.0", "2.2"))
    shot = artifacts / "grid-page.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    full = artifacts / "grid-page-full.png"
    page.keyboard.press("Escape")
    page.screenshot(path=str(full), full_page=True)
    assert full.stat().st_size > shot.stat().st_size
