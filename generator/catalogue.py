"""The shop's product catalogue (generator/catalogue.csv, derived from REES46 data by
generator/build_catalogue.py; credit: REES46 Marketing Platform / Open CDP)."""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

CATALOGUE_CSV = Path(__file__).with_name("catalogue.csv")


class Product(NamedTuple):
    """One catalogue product. ``category`` is a slash path such as "electronics/smartphone";
    ``price`` is in USD. Rows come in descending popularity."""

    id: str
    name: str
    category: str
    brand: str
    price: float


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[Product, ...]:
    with open(path, newline="") as f:
        return tuple(
            Product(row["product_id"], row["name"], row["category"], row["brand"], float(row["price"]))
            for row in csv.DictReader(f)
        )


def load_catalogue(path: str | Path | None = None) -> list[Product]:
    """The catalogue as a list of products, most popular first."""
    return list(_load(str(path or CATALOGUE_CSV)))
