"""The built book as a reader sees it, in headless Chromium, with no network but 127.0.0.1.

One visit per page (``book_crawl``) records what the checks below need: console errors, failed
or external requests, images, formulas, links and element ids. Requests to any other host are
blocked and reported, so a page that would need the internet (a CDN's MathJax, say) fails here.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from .conftest import BOOK_HTML, SCREENSHOTS, VIEWPORT

REPORT = SCREENSHOTS.parent / "browser-book-report.json"

# What a page must show once MathJax is done. Raw TeX delimiters left in the text (outside
# code) mean a formula that was never typeset; mjx-merror is MathJax's "unknown macro" box.
PAGE_STATE_JS = r"""
() => {
  const text = (() => {
    const clone = document.querySelector("main, article, body").cloneNode(true);
    clone.querySelectorAll("pre, code, script, style, textarea, mjx-container, .highlight").forEach(e => e.remove());
    return clone.textContent;
  })();
  const ids = [...document.querySelectorAll("[id]")].map(e => e.id)
    .concat([...document.querySelectorAll("a[name]")].map(e => e.getAttribute("name")));
  return {
    title: document.title,
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src, complete: img.complete,
      width: img.naturalWidth, height: img.naturalHeight,
    })),
    formulas: document.querySelectorAll(".math").length,
    untypeset: [...document.querySelectorAll(".math")].filter(e => !e.querySelector("mjx-container"))
      .map(e => e.textContent.slice(0, 80)),
    mathjax_containers: document.querySelectorAll("mjx-container").length,
    mathjax_errors: [...document.querySelectorAll("mjx-merror")].map(e => e.textContent.slice(0, 80)),
    raw_tex: [...text.matchAll(/\\\(|\\\)|\\\[|\\\]|\$\$|\$\\[A-Za-z]+/g)].map(m =>
      text.slice(Math.max(0, m.index - 30), m.index + 30)),
    links: [...document.querySelectorAll("a[href]")].map(a => ({
      href: a.href, raw: a.getAttribute("href"), cite: !!a.closest(".bibtex-citation"),
    })),
    ids: ids,
    code_overflow: [...document.querySelectorAll("div.cell_input pre")]
      .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
      .map(pre => pre.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a), "").slice(0, 100)),
    code_blocks: document.querySelectorAll("div.cell_input pre").length,
  };
}
"""


@dataclass
class PageVisit:
    path: str  # relative to _build/html, e.g. "book/01-importance-sampling.html"
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed requests
    state: dict = field(default_factory=dict)


def _book_pages() -> list[str]:
    skip = ("_static/", "_sources/", "_images/", "_downloads/")
    return sorted(
        p.relative_to(BOOK_HTML).as_posix()
        for p in BOOK_HTML.rglob("*.html")
        if not p.relative_to(BOOK_HTML).as_posix().startswith(skip)
    )


def _visit(page, url: str, visit: PageVisit, origin: str) -> None:
    page.on("console", lambda msg: msg.type == "error" and visit.errors.append(f"console error: {msg.text}"))
    page.on("pageerror", lambda exc: visit.errors.append(f"uncaught JavaScript error: {exc}"))
    page.on("requestfailed", lambda req: visit.errors.append(f"request failed: {req.url} ({req.failure})"))
    page.on("response", lambda res: res.status >= 400 and visit.errors.append(f"HTTP {res.status}: {res.url}"))

    def only_local(route) -> None:
        if route.request.url.startswith(origin + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            visit.errors.append(f"request outside the book (no network offline): {route.request.url}")
            route.abort()

    page.route("**/*", only_local)
    page.goto(url, wait_until="networkidle", timeout=60_000)
    if page.locator(".math").count():
        # MathJax 3 resolves startup.promise once the page is typeset.
        page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise", timeout=30_000)
        page.evaluate("() => window.MathJax.startup.promise.then(() => true)")
    visit.state = page.evaluate(PAGE_STATE_JS)


@pytest.fixture(scope="session")
def book_crawl(book_url: str, browser, screenshots: Path) -> dict[str, PageVisit]:
    """Every HTML page of the built book, visited once in Chromium, with a screenshot."""
    visits: dict[str, PageVisit] = {}
    for path in _book_pages():
        context = browser.new_context(viewport=VIEWPORT)
        try:
            page = context.new_page()
            visit = PageVisit(path)
            _visit(page, f"{book_url}/{path}", visit, book_url)
            name = path.removesuffix(".html").replace("/", "-")
            page.screenshot(path=screenshots / f"book-{name}.png")
        finally:
            context.close()
        visits[path] = visit
    REPORT.write_text(json.dumps(_summary(visits, book_url), indent=1) + "\n")
    return visits


def _summary(visits: dict[str, PageVisit], book_url: str) -> dict[str, int]:
    """How much was looked at (printed at the end of the pytest run)."""
    links = [link for v in visits.values() for link in v.state["links"] if link["href"].startswith(book_url + "/")]
    return {
        "pages": len(visits),
        "images": sum(len(v.state["images"]) for v in visits.values()),
        "formulas": sum(v.state["formulas"] for v in visits.values()),
        "internal links": len(links),
        "of which citations": sum(link["cite"] for link in links),
    }


REPO = Path(__file__).resolve().parents[2]


def _chapters(crawl: dict[str, PageVisit]) -> list[PageVisit]:
    """The executed chapters: pages built from a notebook ``book/NN-*.ipynb`` (not markdown pages)."""
    return [v for p, v in crawl.items() if re.match(r"book/\d\d-", p) and (REPO / p).with_suffix(".ipynb").is_file()]


def test_every_page_loads_without_errors(book_crawl: dict[str, PageVisit]) -> None:
    assert len(_chapters(book_crawl)) >= 4, f"expected the chapter pages, found {sorted(book_crawl)}"
    problems = [f"{v.path}: {e}" for v in book_crawl.values() for e in v.errors]
    assert not problems, "\n".join(problems)


def test_every_image_has_loaded(book_crawl: dict[str, PageVisit]) -> None:
    images = [(v.path, img) for v in book_crawl.values() for img in v.state["images"]]
    broken = [f"{path}: {img['src']}" for path, img in images if not (img["complete"] and img["width"] > 0 and img["height"] > 0)]
    assert not broken, "images that did not load:\n" + "\n".join(broken)
    for chapter in _chapters(book_crawl):  # every chapter draws figures
        assert chapter.state["images"], f"{chapter.path}: no image at all"


def test_every_formula_is_typeset(book_crawl: dict[str, PageVisit]) -> None:
    problems = []
    for v in book_crawl.values():
        s = v.state
        problems += [f"{v.path}: formula not typeset: {t!r}" for t in s["untypeset"]]
        problems += [f"{v.path}: MathJax error (unknown macro?): {t!r}" for t in s["mathjax_errors"]]
        problems += [f"{v.path}: raw TeX left in the text: ...{t!r}..." for t in s["raw_tex"]]
    assert not problems, "\n".join(problems)
    assert sum(v.state["formulas"] for v in book_crawl.values()) > 0, "no formula found in the book at all"
    for chapter in _chapters(book_crawl):
        assert chapter.state["mathjax_containers"] > 0, f"{chapter.path}: no typeset formula"


def _target_exists(url: str, crawl: dict[str, PageVisit], checked: dict[str, bool]) -> str | None:
    """None if ``url`` (on the book's server) resolves, else what is wrong."""
    address, fragment = urldefrag(url)
    path = unquote(urlsplit(address).path).lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    if path in crawl:
        if fragment and unquote(fragment) not in crawl[path].state["ids"]:
            return f"no element with id {unquote(fragment)!r} in {path}"
        return None
    if address not in checked:
        try:
            with urllib.request.urlopen(address, timeout=10) as response:
                checked[address] = response.status == 200
        except (urllib.error.URLError, TimeoutError):
            checked[address] = False
    return None if checked[address] else f"{path} does not load"


def test_every_internal_link_and_citation_resolves(book_crawl: dict[str, PageVisit], book_url: str) -> None:
    checked: dict[str, bool] = {}
    broken, n_links, n_citations = [], 0, 0
    for v in book_crawl.values():
        for link in v.state["links"]:
            if not link["href"].startswith(book_url + "/"):
                continue  # external (none in the book so far) or javascript:
            n_links += 1
            n_citations += link["cite"]
            problem = _target_exists(link["href"], book_crawl, checked)
            if problem:
                broken.append(f"{v.path}: link {link['raw']!r}: {problem}")
    assert not broken, "\n".join(broken)
    assert n_links > 0 and n_citations > 0, f"{n_links} internal links and {n_citations} citations: expected some of each"


def test_chapter_code_fits_the_page(book_crawl: dict[str, PageVisit]) -> None:
    """No code cell scrolls sideways on a laptop-sized window (code lines are at most 88 characters)."""
    overflowing = [f"{v.path}: {line!r}" for v in _chapters(book_crawl) for line in v.state["code_overflow"]]
    assert not overflowing, "code cells wider than the page:\n" + "\n".join(overflowing)
    for chapter in _chapters(book_crawl):
        assert chapter.state["code_blocks"] > 0, f"{chapter.path}: no code cell found"


def test_search_finds_a_word_from_a_chapter(page, book_url: str, screenshots: Path) -> None:
    page.goto(f"{book_url}/search.html?q=Metropolis", wait_until="networkidle", timeout=60_000)
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for(timeout=30_000)
    targets = [urlsplit(href).path for href in results.evaluate_all("links => links.map(a => a.href)")]
    page.screenshot(path=screenshots / "book-search-Metropolis.png")
    assert "/book/02-metropolis-hastings.html" in targets, f"search for 'Metropolis' found {targets}"

