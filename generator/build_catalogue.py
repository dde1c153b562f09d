"""Build generator/catalogue.csv from a sample of real e-commerce data.

Source: the REES46 eCommerce behaviour data set, October 2019 (credit: REES46 Marketing
Platform / Open CDP, https://rees46.com/en/open-cdp), of which the first ~17k rows are
kept in /work/shared/data/real/rees46-2019-Oct-head17k.csv. The catalogue is derived once
and committed, so the generator never needs the source file at run time:

    .venv/bin/python -m generator.build_catalogue [SOURCE_CSV] [--size 300]

Rules (documented in docs/event-contract.md):
- only products with a category_code and a brand;
- category "electronics.smartphone" becomes "electronics/smartphone" (dots → slashes, so the
  top level is the part before the first slash and the path fits a URL);
- name = Brand + readable category leaf + a model suffix derived from the product id,
  e.g. "Samsung Smartphone N856";
- brand = the brand, capitalised for display ("samsung" → "Samsung", "lg" → "LG");
- price = median price seen for the product, in USD (2 decimals);
- rows are written in descending order of real popularity (views in the sample); the
  generator gives row r a Zipf-like weight, so the tail is rarely viewed;
- breadth: at most ``--per-category`` products per category, picked by popularity.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import string
from collections import defaultdict
from pathlib import Path

DEFAULT_SOURCE = Path("/work/shared/data/real/rees46-2019-Oct-head17k.csv")
DEFAULT_TARGET = Path(__file__).with_name("catalogue.csv")
FIELDS = ["product_id", "name", "category", "brand", "price"]

# brand spellings that str.title() gets wrong
BRAND_NAMES = {"lg": "LG", "hp": "HP", "jbl": "JBL", "bq": "BQ", "tcl": "TCL", "aeg": "AEG", "zte": "ZTE"}


def readable_brand(brand: str) -> str:
    return BRAND_NAMES.get(brand, brand.replace("_", " ").title())


# category leaves whose capitalisation is not str.capitalize()'s
LEAF_NAMES = {
    "tv": "TV",
    "hdd": "HDD",
    "videoregister": "Dashcam",
    "player": "Car player",
    "keds": "Sneakers",
    "slipons": "Slip-ons",
    "clocks": "Watch",
    "cartrige": "Cartridge",
    "refrigerators": "Refrigerator",
    "videocards": "Graphics card",
}


def readable_leaf(category_code: str) -> str:
    leaf = category_code.rsplit(".", 1)[-1]
    return LEAF_NAMES.get(leaf, leaf.replace("_", " ").capitalize())


def model_suffix(product_id: int) -> str:
    return f"{string.ascii_uppercase[product_id % 26]}{product_id % 1000}"


def build(source: Path, size: int, per_category: int) -> list[dict[str, str]]:
    seen: dict[str, dict] = {}
    prices: dict[str, list[float]] = defaultdict(list)
    with source.open(newline="") as f:
        for row in csv.DictReader(f):
            if not row["category_code"] or not row["brand"]:
                continue
            pid = row["product_id"]
            prices[pid].append(float(row["price"]))
            info = seen.setdefault(
                pid, {"category_code": row["category_code"], "brand": row["brand"], "n": 0}
            )
            info["n"] += 1
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1]["n"], int(kv[0])))
    per_cat: dict[str, int] = defaultdict(int)
    picked: list[dict[str, str]] = []
    for pid, info in ranked:
        price = round(statistics.median(prices[pid]), 2)
        if price < 1.0 or per_cat[info["category_code"]] >= per_category:
            continue
        per_cat[info["category_code"]] += 1
        picked.append(
            {
                "product_id": pid,
                "name": f"{readable_brand(info['brand'])} {readable_leaf(info['category_code'])} "
                f"{model_suffix(int(pid))}",
                "category": info["category_code"].replace(".", "/"),
                "brand": readable_brand(info["brand"]),
                "price": f"{price:.2f}",
            }
        )
        if len(picked) >= size:
            break
    return picked


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--target", type=Path, default=DEFAULT_TARGET)
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--per-category", type=int, default=12)
    args = parser.parse_args(argv)
    rows = build(args.source, args.size, args.per_category)
    with args.target.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    categories = {r["category"] for r in rows}
    print(f"{len(rows)} products, {len(categories)} categories, {len({r['brand'] for r in rows})} brands")


if __name__ == "__main__":
    main()
