"""Compose and render every variant of the seed issue, against a bare ``mjml2html`` of the same MJML.

Every combination of the demo regions (and no region) with every set of the interests the issue
names is composed; the distinct variants are rendered (Jinja2 → MJML → HTML, Jinja2 → text). The
anchor is mjml-python's ``mjml2html`` alone on the MJML our Jinja2 step produced for each variant:
the ratio says what our part (composing, Markdown, Jinja2, the text part) costs on top of MJML.

    .venv/bin/python bench/render.py            # all regions × all interest sets, 5 rounds
    .venv/bin/python bench/render.py --quick    # Kent's regions only, 1 round
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mjml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from machine import print_header  # noqa: E402

from mailer.audience.shape import load_shape  # noqa: E402
from mailer.compose import Variant, compose, relevant_interests  # noqa: E402
from mailer.issue import load_issue  # noqa: E402
from mailer.render import Renderer  # noqa: E402
from mailer.settings import Settings  # noqa: E402

SLUG = "2025-11-kent-network"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Kent's regions only, one round")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (best is reported)")
    args = parser.parse_args()
    print_header()
    rounds = args.rounds or (1 if args.quick else 5)

    shape = load_shape(ROOT / "lists")
    loaded = load_issue(ROOT / "campaigns" / SLUG / "issue.yaml", shape)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(workspace=Path(tmp), base_url="https://kent.example.org")
        regions: list[str | None] = [None, *(shape.descendants("kent") if args.quick else shape.regions)]
        interests = sorted(relevant_interests(loaded.issue))
        sets = [frozenset(c) for n in range(len(interests) + 1) for c in itertools.combinations(interests, n)]
        combos = [(r, s) for r in regions for s in sets]

        compose_times, render_times, mjml_times = [], [], []
        variants: dict[str, Variant] = {}
        html_sizes: list[int] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            variants = {}
            for region, chosen in combos:
                v = compose(loaded.issue, shape, region, chosen)
                variants.setdefault(v.key, v)
            t1 = time.perf_counter()
            renderer = Renderer(settings)
            html_sizes = [len(renderer.render(v, loaded).html.encode()) for v in variants.values()]
            t2 = time.perf_counter()
            compose_times.append(t1 - t0)
            render_times.append(t2 - t1)
            # The anchor: mjml2html alone on the very MJML our Jinja2 step produced.
            sources = [renderer.mjml(v, loaded) for v in variants.values()]
            t3 = time.perf_counter()
            for source in sources:
                mjml.mjml2html(source, disable_comments=True, fonts={})
            mjml_times.append(time.perf_counter() - t3)

    n = len(variants)
    ours = min(c + r for c, r in zip(compose_times, render_times, strict=True))
    anchor = min(mjml_times)
    print(f"seed issue {SLUG}: {len(combos)} (region, interests) combinations -> {n} distinct variants")
    print(f"interests that decide items: {', '.join(interests)}; regions: {len(regions)} (incl. none)")
    print(f"HTML size: {min(html_sizes) / 1024:.1f}-{max(html_sizes) / 1024:.1f} KB (limit 100 KB)")
    print(f"best of {rounds} round(s)")
    print()
    print(f"{'':34}{'total':>12}{'per variant':>14}")
    print(f"{'compose (all combinations)':34}{min(compose_times) * 1000:>10.1f}ms{'':>14}")
    best_render = min(render_times)
    print(
        f"{'render (Jinja2 + MJML + text)':34}{best_render * 1000:>10.1f}ms{best_render / n * 1000:>12.2f}ms"
    )
    print(f"{'compose + render':34}{ours * 1000:>10.1f}ms{ours / n * 1000:>12.2f}ms")
    print(f"{'anchor: bare mjml2html, same MJML':34}{anchor * 1000:>10.1f}ms{anchor / n * 1000:>12.2f}ms")
    print(f"{'ratio (render / anchor)':34}{best_render / anchor:>11.2f}x")
    print(f"{'ratio (compose + render / anchor)':34}{ours / anchor:>11.2f}x")
    if len(render_times) > 1:
        print(f"\nrender spread: median {statistics.median(render_times) * 1000:.1f}ms")


if __name__ == "__main__":
    main()
