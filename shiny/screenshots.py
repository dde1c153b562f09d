"""Take a PNG screenshot of every dashboard page with headless Chromium (for docs/dashboards.md).
Each page is opened by its URL (every view is one: `viewstate.py`), the Funnel page twice: the
standard funnel and the builder with a funnel of its own.

.venv/bin/python shiny/screenshots.py [--url http://127.0.0.1:3838/clickstream-analytics/]
                                      [--out docs/img] [--width 1400]

A width other than 1400 (a phone: 390) adds `-<width>px` to the file names.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
# file name -> (the view's query string, the widget whose query settles the page)
PAGES = {
    "overview": ("page=overview", "overview-daily"),
    "funnel": ("page=funnel", "funnel-breakdown_card"),
    "funnel-builder": (  # the last week of data: its previous period has data too
        "page=funnel&from={week_start}&to={end}&step1=product_view&step1_price_min=100&step2=add_to_cart"
        "&step3=checkout_start&step4=purchase&window=1+hour",
        "funnel-custom_previous",
    ),
    "products": ("page=products", "products-performance"),
    "activity": ("page=activity", "activity-heatmap"),
    "behaviour": ("page=behaviour", "behaviour-flows"),
}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def settle(page, widget: str) -> None:
    page.wait_for_function(
        "id => { const el = document.getElementById(id); return el && el.textContent.includes('analytics.')"
        " && window.Shiny && !document.documentElement.classList.contains('shiny-busy'); }",
        arg=f"{widget}-sql",
        timeout=60_000,
    )
    page.wait_for_function("() => window.Plotly", timeout=30_000)
    page.wait_for_timeout(1500)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:3838/clickstream-analytics/")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1400, help="viewport width in px (a phone: 390)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.width == 1400 else f"-{args.width}px"
    base = args.url.split("?")[0]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.goto(base)
        end = date.fromisoformat(page.locator("#overview-filters-dates input").nth(1).input_value())
        dates = {"end": end.isoformat(), "week_start": (end - timedelta(days=6)).isoformat()}
        for name, (query, widget) in PAGES.items():
            page.goto(f"{base}?{query.format(**dates)}")
            settle(page, widget)
            path = out / f"dashboard-{name}{suffix}.png"
            page.screenshot(path=str(path), full_page=True)
            print(path)
        browser.close()


if __name__ == "__main__":
    main()
