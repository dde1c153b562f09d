"""Every SQL query the dashboards run: one named, parameterised function each, grouped by the
page that shows it. Each takes a connection and plain Python values and returns a
`QueryResult`: the rows as a DataFrame plus the exact SQL that ran, with its parameter values
inlined by psycopg2's `cursor.mogrify`, ready to paste into psql.

- `base.py`: running a query, whitelists, and `segment_filter`, the device/source fragment
  every segmented query shares;
- `settings.py`: funnel steps, labels and freshness thresholds, read from the dbt project;
- `choices.py` (filters' choices), `health.py` (data-health bar), `overview.py`, `funnel.py`
  (with the builder's `custom_funnel` and the saved funnels),
  `products.py`, `activity.py`.

The dashboards read only the marts in schema `analytics`, as the read-only role (`db.py`).
"""

from .activity import (
    ACTIVITY_BREAKDOWNS,
    activity_breakdown,
    campaign_sessions_per_day,
    conversion_by_weekday,
    events_by_hour,
    events_by_local_day,
    hour_weekday_heatmap,
)
from .base import QueryResult, Refused, _plain, run, segment_filter
from .choices import date_bounds, filter_choices, price_bounds
from .funnel import (
    FUNNEL_BREAKDOWNS,
    custom_funnel,
    funnel_breakdown,
    funnel_steps,
    funnel_time_to_convert,
    save_funnel,
    saved_funnels,
)
from .health import data_health, full_check
from .overview import (
    GRAINS,
    TIME_SERIES_EVENTS,
    auto_grain,
    events_over_time,
    events_per_day,
    overview_kpis,
    previous_period,
)
from .products import (
    PRODUCT_RANKINGS,
    PRODUCT_ROLLUPS,
    product_attention,
    product_performance,
    product_rollup,
    rarely_viewed_products,
)
from .settings import Settings, dashboard_settings, settings, step_labels

__all__ = [
    "ACTIVITY_BREAKDOWNS",
    "FUNNEL_BREAKDOWNS",
    "GRAINS",
    "PRODUCT_RANKINGS",
    "PRODUCT_ROLLUPS",
    "TIME_SERIES_EVENTS",
    "QueryResult",
    "Refused",
    "Settings",
    "_plain",
    "activity_breakdown",
    "auto_grain",
    "campaign_sessions_per_day",
    "conversion_by_weekday",
    "custom_funnel",
    "dashboard_settings",
    "data_health",
    "full_check",
    "date_bounds",
    "events_by_hour",
    "events_by_local_day",
    "events_over_time",
    "events_per_day",
    "filter_choices",
    "funnel_breakdown",
    "funnel_steps",
    "funnel_time_to_convert",
    "hour_weekday_heatmap",
    "overview_kpis",
    "previous_period",
    "price_bounds",
    "product_attention",
    "product_performance",
    "product_rollup",
    "rarely_viewed_products",
    "run",
    "save_funnel",
    "saved_funnels",
    "segment_filter",
    "settings",
    "step_labels",
]
