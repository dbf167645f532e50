"""axe-core in the browser tests: ``check_axe(page)`` fails on any serious or critical violation.

The pages have a Content-Security-Policy without ``script-src``, so a ``<script>`` tag added to
the page would not run: the engine is evaluated through the DevTools protocol (``page.evaluate``),
which the CSP does not stop. axe needs timers, which a browser context without JavaScript (the
desk's tests browse without it) never fires; for such a page, its HTML as it is now is opened at
the same address, at the same width and with the same cookies, in a twin context with JavaScript
(the pages have no script of their own, and their styles are inline), and axe runs there.
Frames are not entered (``iframes: false``): a preview's sandboxed copy of a message runs no
script, so axe cannot run inside it; the frame element itself (its title) is checked.
The vendored axe-core is in ``tests/vendor/axe-core/`` (its README names the version).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

AXE = Path(__file__).resolve().parent.parent / "vendor" / "axe-core" / "axe.min.js"
FAIL_ON = ("serious", "critical")
# WCAG 2.0/2.1 A and AA, and axe's best practices (the issue asks for WCAG 2.1 AA; best practices
# are reported too but only serious and critical findings fail).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@cache
def _source() -> str:
    return AXE.read_text(encoding="utf-8")


SCRIPTING = """() => {
  const probe = document.createElement('div');
  probe.innerHTML = '<noscript><p>x</p></noscript>';
  return probe.querySelector('noscript p') === null;
}"""


def run_axe(page: Any) -> dict[str, Any]:
    """axe's violations on the page as it is now (``{"violations": [...]}``)."""
    if page.evaluate(SCRIPTING):
        return _run_here(page)
    browser = page.context.browser
    twin = browser.new_context(
        viewport=page.viewport_size, storage_state=page.context.storage_state(), java_script_enabled=True
    )
    try:
        opened = twin.new_page()
        url, html = page.url, page.content()
        opened.route(
            lambda u: u == url,
            lambda route: route.fulfill(status=200, body=html, content_type="text/html; charset=utf-8"),
        )
        opened.goto(url)
        opened.unroute_all()
        return _run_here(opened)
    finally:
        twin.close()


def _run_here(page: Any) -> dict[str, Any]:
    loaded = page.evaluate("() => typeof window.axe === 'object'")
    if not loaded:
        # The file defines ``window.axe`` when evaluated as a script body.
        page.evaluate("source => { (0, eval)(source); }", _source())
    results: dict[str, Any] = page.evaluate(
        """async tags => {
          const r = await window.axe.run(document, {runOnly: {type: 'tag', values: tags},
                                                   resultTypes: ['violations'], iframes: false});
          return {violations: r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            nodes: v.nodes.map(n => ({target: n.target, html: n.html.slice(0, 200),
                                      summary: n.failureSummary}))}))};
        }""",
        TAGS,
    )
    return results


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:5]:
            lines.append(f"    at {' '.join(map(str, node['target']))}: {node['html']}")
            if node.get("summary"):
                lines.append("      " + node["summary"].replace("\n", "\n      "))
    return "\n".join(lines)


def check_axe(page: Any, *, name: str = "", allow: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Run axe on ``page``; fail listing every serious or critical violation. Returns the others
    (minor, moderate, and those of the rules in ``allow``), which do not fail.

    ``allow`` names rules a page breaks on purpose, each to be justified where it is used: the
    only one so far is ``meta-refresh`` on the desk's progress page followed live, which reloads
    itself because its reader asked it to and says how to stop (WCAG 2.2.1 lets the user turn a
    time limit off; axe cannot see that)."""
    violations = run_axe(page)["violations"]
    bad = [v for v in violations if v["impact"] in FAIL_ON and v["id"] not in allow]
    where = f" on {name or page.url}"
    assert not bad, f"axe-core found serious or critical violations{where}:\n{describe(bad)}"
    return [v for v in violations if v not in bad]
