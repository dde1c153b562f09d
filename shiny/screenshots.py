"""Take a PNG screenshot of every dashboard page with headless Chromium (for docs/dashboards.md).

.venv/bin/python shiny/screenshots.py [--url http://127.0.0.1:3838/clickstream-analytics/]
                                      [--out docs/img]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    ("overview", "overview-daily"),
    ("funnel", "funnel-breakdown_card"),
    ("products", "products-performance"),
    ("activity", "activity-heatmap"),
]
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
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(args.url)
        for name, widget in PAGES:
            page.get_by_role("tab", name=name.capitalize()).click()
            settle(page, widget)
            path = out / f"dashboard-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            print(path)
        browser.close()


if __name__ == "__main__":
    main()
