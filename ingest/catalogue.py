"""The demo storefront's products: generator/catalogue.csv (product_id or id, name, category,
brand, price in USD), served as JSON to the storefront."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

DEFAULT_CATALOGUE = Path(__file__).resolve().parents[1] / "generator" / "catalogue.csv"
COLUMNS = ("name", "category", "brand", "price")
ID_COLUMNS = ("product_id", "id")


class CatalogueError(RuntimeError):
    """The catalogue is missing or malformed."""


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> list[dict[str, Any]]:
    if not path.exists():
        raise CatalogueError(f"product catalogue not found at {path} (it is written by generator/)")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        id_column = next((c for c in ID_COLUMNS if c in fields), None)
        missing = [c for c in COLUMNS if c not in fields] + ([] if id_column else ["product_id"])
        if missing:
            raise CatalogueError(
                f"{path}: missing columns {missing}; expected product_id and {list(COLUMNS)}"
            )
        products = []
        for line, row in enumerate(reader, start=2):
            try:
                price = round(float(row["price"]), 2)
            except (TypeError, ValueError) as exc:
                raise CatalogueError(f"{path}:{line}: price {row['price']!r} is not a number") from exc
            products.append(
                {
                    "id": row[id_column],
                    "name": row["name"],
                    "category": row["category"],
                    "brand": row["brand"],
                    "price": price,
                }
            )
    if not products:
        raise CatalogueError(f"{path} has no products")
    return products
