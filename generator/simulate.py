"""Simulated shoppers: one session at a time, events streamed in arrival (received_at) order.

Sessions start as a non-homogeneous Poisson process (hourly and weekday seasonality, a
campaign-day spike every 14 days from the start). Each session is simulated whole, its
events are pushed onto a heap keyed by received_at, and every event older than the next
session's start is yielded: memory holds only the sessions still "open" (an hour or so of
traffic), never the whole run. Everything random comes from one ``random.Random(seed)``,
so a seed and a start give the same stream, byte for byte.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from urllib.parse import quote_plus, urlencode

from generator.catalogue import Product, load_catalogue

SHOP = "https://shop.example.com"
SHOP_NAME = "Example Shop"
CURRENCY = "USD"
SCHEMA_VERSION = "1"

DEFAULT_SESSIONS_PER_DAY = 4000
# measured average of events per session with the default options (see bench/)
MEAN_EVENTS_PER_SESSION = 8.0
ZIPF_EXPONENT = 0.95
REGISTERED_USERS = 25_000
RETURNING_GUESTS = 200_000
CAMPAIGN_EVERY_DAYS = 14
CAMPAIGN_FIRST_DAY = 4
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# share of sessions by hour of day (UTC is the shop's local time), normalised below
_WEEKDAY_HOURS = [0.35, 0.22, 0.15, 0.12, 0.12, 0.18, 0.35, 0.6, 0.85, 1.0, 1.05, 1.1]
_WEEKDAY_HOURS += [1.2, 1.15, 1.05, 1.0, 1.05, 1.15, 1.35, 1.6, 1.8, 1.75, 1.35, 0.75]
_WEEKEND_HOURS = [0.45, 0.3, 0.2, 0.15, 0.12, 0.14, 0.22, 0.35, 0.6, 0.9, 1.15, 1.3]
_WEEKEND_HOURS += [1.35, 1.35, 1.3, 1.25, 1.25, 1.3, 1.4, 1.55, 1.6, 1.5, 1.2, 0.75]
WEEKDAY_HOURS = [h * 24 / sum(_WEEKDAY_HOURS) for h in _WEEKDAY_HOURS]
WEEKEND_HOURS = [h * 24 / sum(_WEEKEND_HOURS) for h in _WEEKEND_HOURS]
# Monday .. Sunday
DAY_FACTORS = [1.0, 0.97, 0.98, 1.0, 0.92, 1.1, 1.18]
# traffic multiplier on a campaign day, before and after the 08:00 e-mail send
CAMPAIGN_NIGHT, CAMPAIGN_DAY = 1.3, 3.0

# (weight, type, os, browser, user_agent, screen)
DEVICES = [
    (
        0.22,
        "desktop",
        "Windows",
        "Chrome",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "1920x1080",
    ),
    (
        0.05,
        "desktop",
        "Windows",
        "Edge",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "1536x864",
    ),
    (
        0.04,
        "desktop",
        "Windows",
        "Firefox",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "1366x768",
    ),
    (
        0.07,
        "desktop",
        "macOS",
        "Safari",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "1440x900",
    ),
    (
        0.05,
        "desktop",
        "macOS",
        "Chrome",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "2560x1440",
    ),
    (
        0.01,
        "desktop",
        "Linux",
        "Firefox",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "1920x1080",
    ),
    (
        0.22,
        "mobile",
        "iOS",
        "Safari",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "390x844",
    ),
    (
        0.17,
        "mobile",
        "Android",
        "Chrome",
        "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "412x915",
    ),
    (
        0.05,
        "mobile",
        "Android",
        "Samsung Internet",
        "Mozilla/5.0 (Linux; Android 13; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "384x854",
    ),
    (
        0.06,
        "tablet",
        "iPadOS",
        "Safari",
        "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Mobile/15E148 Safari/604.1",
        "820x1180",
    ),
    (
        0.03,
        "tablet",
        "Android",
        "Chrome",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "800x1280",
    ),
    (
        0.01,
        "other",
        "Tizen",
        "Samsung Internet",
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/5.0 Chrome/94.0.4606.31 TV Safari/537.36",
        "1920x1080",
    ),
]
# on Saturday and Sunday, mobile and tablet weigh this much more
WEEKEND_MOBILE_BOOST = 1.35

BOT_DEVICES = [
    (
        "other",
        None,
        "Googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        None,
    ),
    (
        "other",
        None,
        "bingbot",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        None,
    ),
    ("other", None, "AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", None),
    ("other", None, None, "python-requests/2.31.0", None),
    ("other", None, None, "curl/8.5.0", None),
    (
        "desktop",
        "Linux",
        "HeadlessChrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 "
        "Safari/537.36",
        "800x600",
    ),
]

# (weight, source, medium, campaigns, contents, referrer, landing weights home/category/product).
# The labels are what ingest/static/tracker.js records: the UTM parameters when the landing URL
# has them, else the referrer's host (medium organic / social / referral), else (direct)/(none).
TRAFFIC = [
    (0.27, "(direct)", "(none)", None, None, None, (0.6, 0.2, 0.2)),
    (0.25, "google.com", "organic", None, None, "https://www.google.com/", (0.1, 0.35, 0.55)),
    (0.03, "bing.com", "organic", None, None, "https://www.bing.com/", (0.1, 0.35, 0.55)),
    (
        0.14,
        "google",
        "cpc",
        ("brand_search", "shopping_electronics", "generic_appliances"),
        ("text_ad", "shopping_ad"),
        "https://www.google.com/",
        (0.05, 0.25, 0.7),
    ),
    (
        0.06,
        "facebook",
        "paid_social",
        ("retargeting", "lookalike_audiences"),
        ("carousel", "video"),
        "https://l.facebook.com/",
        (0.2, 0.3, 0.5),
    ),
    (0.05, "l.instagram.com", "social", None, None, "https://l.instagram.com/", (0.3, 0.3, 0.4)),
    (0.08, "newsletter", "email", ("weekly_digest",), ("hero_banner", "product_grid"), None, (0.3, 0.5, 0.2)),
    (0.02, "techradar.com", "referral", None, None, "https://www.techradar.com/best/", (0.1, 0.3, 0.6)),
    (0.01, "pricerunner.com", "referral", None, None, "https://www.pricerunner.com/", (0.05, 0.15, 0.8)),
    (0.02, "reddit.com", "social", None, None, "https://www.reddit.com/r/BuyItForLife/", (0.1, 0.3, 0.6)),
    (0.02, "youtube.com", "social", None, None, "https://www.youtube.com/", (0.2, 0.3, 0.5)),
    (0.05, "awin", "affiliate", ("cashback",), None, "https://www.awin1.com/", (0.1, 0.2, 0.7)),
]
CAMPAIGN_TRAFFIC = [("newsletter", "email", None), ("facebook", "paid_social", "https://l.facebook.com/")]
CAMPAIGN_TRAFFIC += [("instagram", "paid_social", "https://l.instagram.com/")]

ZERO_RESULT_QUERIES = [
    "gift card",
    "ps5",
    "iphnoe",
    "lego",
    "dyson v15",
    "nintendo switch",
    "sofa bed 3 seater",
]
INVALID_TIMESTAMPS = ["yesterday", "", "2024-13-45T25:99:00Z", "1714557600", "01/05/2024 10:00"]
# an empty session_id, not a missing one: the warehouse derives the session of an event sent
# without one (Segment's SDKs send none), so only an empty one is still broken
INVALID_KINDS = ["empty_session_id", "bad_timestamp", "missing_event_id", "bad_event_name", "missing_block"]


def parse_start(start: str | date | datetime | None, days: float | None) -> datetime:
    """The run's first instant (UTC). Default: today 00:00 UTC minus ``days``."""
    if start is None:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today - timedelta(days=math.ceil(days or 1))
    if isinstance(start, str):
        start = datetime.fromisoformat(start.strip().replace("z", "Z"))
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return start.astimezone(UTC)


def hour_factor(hour_ms: int, start_day: int) -> tuple[float, float]:
    """(traffic multiplier, campaign share) for the UTC hour starting at hour_ms."""
    day = hour_ms // DAY_MS
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
    hour = (hour_ms % DAY_MS) // HOUR_MS
    profile = WEEKEND_HOURS if weekday >= 5 else WEEKDAY_HOURS
    factor = profile[hour] * DAY_FACTORS[weekday]
    if is_campaign_day(day, start_day):
        boost = CAMPAIGN_DAY if hour >= 8 else CAMPAIGN_NIGHT
        return factor * boost, 1.0 - 1.0 / boost
    return factor, 0.0


def is_campaign_day(day: int, start_day: int) -> bool:
    offset = day - start_day
    return offset >= CAMPAIGN_FIRST_DAY and (offset - CAMPAIGN_FIRST_DAY) % CAMPAIGN_EVERY_DAYS == 0


def expected_day_factors(start_ms: int, days: float) -> float:
    """Sum of hourly multipliers over the span, in days (1.0 per average day)."""
    start_day = start_ms // DAY_MS
    hours = max(1, int(round(days * 24)))
    return sum(hour_factor(start_ms + h * HOUR_MS, start_day)[0] for h in range(hours)) / 24


def _derived_uuid(kind: str, index: int) -> str:
    digest = hashlib.blake2b(f"{kind}:{index}".encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _leaf(category: str) -> str:
    return category.rsplit("/", 1)[-1].replace("_", " ")


class _Shop:
    """Catalogue-derived lookup tables, built once per run."""

    def __init__(self, catalogue: list[Product]):
        if not catalogue:
            raise ValueError("the catalogue is empty")
        self.products = catalogue
        weights = [1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(catalogue))]
        self.cum = list(accumulate(weights))
        self.cents = [int(round(p.price * 100)) for p in catalogue]
        self.product_block = [
            {"id": p.id, "name": p.name, "category": p.category, "brand": p.brand, "price": p.price}
            | {"currency": CURRENCY}
            for p in catalogue
        ]
        self.product_page = []
        for p in catalogue:
            path = f"/p/{p.id}/{_slug(p.name)}"
            self.product_page.append((SHOP + path, path, f"{p.name} | {SHOP_NAME}"))
        self.categories: dict[str, list[int]] = {}
        for i, p in enumerate(catalogue):
            self.categories.setdefault(p.category, []).append(i)
        self.category_cum = {
            c: list(accumulate(weights[i] for i in idx)) for c, idx in self.categories.items()
        }
        self.category_page = {}
        for c in self.categories:
            path = f"/c/{c}"
            title = f"{_leaf(c).capitalize()} | {SHOP_NAME}"
            self.category_page[c] = (SHOP + path, path, title)
        self.search_text = [f"{p.name} {p.brand} {p.category.replace('/', ' ')}".lower() for p in catalogue]
        self._matches: dict[str, list[int]] = {}

    def matches(self, query: str) -> list[int]:
        found = self._matches.get(query)
        if found is None:
            tokens = query.lower().split()
            found = [i for i, text in enumerate(self.search_text) if all(t in text for t in tokens)]
            self._matches[query] = found
        return found


class _Generator:
    def __init__(
        self,
        seed: int,
        start: datetime,
        sessions_per_day: float,
        bot_share: float,
        duplicate_share: float,
        invalid_share: float,
        late_share: float,
        catalogue: list[Product],
        stats: dict,
    ):
        self.rng = random.Random(seed)
        self.start_ms = int(start.timestamp() * 1000)
        self.start_day = self.start_ms // DAY_MS
        self.sessions_per_day = sessions_per_day
        self.bot_share = bot_share
        self.duplicate_share = duplicate_share
        self.invalid_share = invalid_share
        self.late_share = late_share
        self.dirty = duplicate_share > 0 or invalid_share > 0 or late_share > 0
        self.shop = _Shop(catalogue)
        self.stats = stats
        self.heap: list = []
        self.seq = 0
        self._minutes: dict[int, str] = {}
        weekday_cum = list(accumulate(d[0] for d in DEVICES))
        weekend_cum = list(
            accumulate(
                d[0] * (WEEKEND_MOBILE_BOOST if d[1] in ("mobile", "tablet") else 1.0) for d in DEVICES
            )
        )
        self.device_cum = (weekday_cum, weekend_cum)
        self.device_blocks = [
            {"type": d[1], "user_agent": d[4], "os": d[2], "browser": d[3], "screen": d[5]} for d in DEVICES
        ]
        self.all_devices = list(range(len(DEVICES)))
        self.mobile_devices = [i for i, d in enumerate(DEVICES) if d[1] in ("mobile", "tablet")]
        self.desktop_devices = [i for i, d in enumerate(DEVICES) if d[1] == "desktop"]
        self.bot_blocks = [
            {"type": b[0], "user_agent": b[3], "os": b[1], "browser": b[2], "screen": b[4]}
            for b in BOT_DEVICES
        ]
        self.traffic_cum = list(accumulate(t[0] for t in TRAFFIC))
        self.home_page = (SHOP + "/", "/", f"{SHOP_NAME} - Electronics, Appliances & More")

    # ---- small helpers -------------------------------------------------------------
    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ts(self, ms: int) -> str:
        minute = ms // 60000
        prefix = self._minutes.get(minute)
        if prefix is None:
            if len(self._minutes) > 4096:
                self._minutes.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
            self._minutes[minute] = prefix
        rest = ms - minute * 60000
        return f"{prefix}{rest // 1000:02d}.{rest % 1000:03d}Z"

    def device_of(self, anonymous_id: str, choices: list[int]) -> dict:
        """A known browser's device: fixed by its id, weighted like DEVICES."""
        cum = list(accumulate(DEVICES[i][0] for i in choices))
        fraction = int(anonymous_id[:8], 16) / 2**32
        return self.device_blocks[choices[bisect_left(cum, fraction * cum[-1])]]

    def popular_product(self) -> int:
        cum = self.shop.cum
        return bisect_left(cum, self.rng.random() * cum[-1])

    def product_in(self, category: str) -> int:
        cum = self.shop.category_cum[category]
        return self.shop.categories[category][bisect_left(cum, self.rng.random() * cum[-1])]

    def dwell(self, median_s: float, sigma: float = 0.8) -> int:
        return int(self.rng.lognormvariate(math.log(median_s * 1000), sigma))

    # ---- the run ------------------------------------------------------------------
    def run(self, end_ms: int | None, limit: int | None) -> Iterator[dict]:
        rng = self.rng
        stats = self.stats
        heap = self.heap
        pop = heapq.heappop
        emitted = 0
        t = float(self.start_ms)
        hour_ms = -1
        rate = campaign_share = 0.0
        per_ms = self.sessions_per_day / DAY_MS
        while True:
            current_hour = int(t) - int(t) % HOUR_MS
            if current_hour != hour_ms:
                hour_ms = current_hour
                factor, campaign_share = hour_factor(hour_ms, self.start_day)
                rate = per_ms * factor
            t += rng.expovariate(rate)
            if t >= hour_ms + HOUR_MS:
                t = float(hour_ms + HOUR_MS)  # memoryless: restart the clock at the new hour's rate
                if end_ms is not None and t >= end_ms:
                    break
                continue
            if end_ms is not None and t >= end_ms:
                break
            start = int(t)
            while heap and heap[0][0] <= start:
                yield pop(heap)[2]
                emitted += 1
                if emitted == limit:
                    return
            self.session(start, campaign_share)
        while heap:
            yield pop(heap)[2]
            emitted += 1
            if emitted == limit:
                return
        stats["end_reached"] = True

    def push(self, items: list[tuple[int, dict]]) -> None:
        """Stamp received_at (event time + a small delivery delay) and queue by arrival."""
        rng = self.rng
        heap = self.heap
        lognorm = rng.lognormvariate
        for t, event in items:
            received = t + min(int(lognorm(5.7, 0.7)), 20_000)  # median ~300 ms
            if self.dirty:
                received = self.dirty_event(t, received, event)
            event["received_at"] = self.ts(received)
            self.seq += 1
            heapq.heappush(heap, (received, self.seq, event))

    def dirty_event(self, t: int, received: int, event: dict) -> int:
        rng = self.rng
        stats = self.stats
        if self.late_share and rng.random() < self.late_share:
            # offline mobile client flushing its queue: lands in a later hour's file
            received = t + HOUR_MS + int(rng.random() * 5 * HOUR_MS)
            stats["late"] += 1
        if self.duplicate_share and rng.random() < self.duplicate_share:
            # a retry: same payload and event_id, received a little later
            copy = dict(event)
            resent = received + 1000 + int(rng.random() * 60_000)
            copy["received_at"] = self.ts(resent)
            self.seq += 1
            heapq.heappush(self.heap, (resent, self.seq, copy))
            stats["duplicates"] += 1
        if self.invalid_share and rng.random() < self.invalid_share:
            self.make_invalid(event)
            stats["invalid"] += 1
        return received

    def make_invalid(self, event: dict) -> None:
        kind = self.rng.choice(INVALID_KINDS)
        if kind == "empty_session_id":
            event["session_id"] = ""
        elif kind == "bad_timestamp":
            event["event_timestamp"] = self.rng.choice(INVALID_TIMESTAMPS)
        elif kind == "missing_event_id":
            del event["event_id"]
        elif kind == "bad_event_name":
            event["event_name"] = event["event_name"].replace("_", " ").title() + "!"
        else:
            for block in ("order", "product"):
                if block in event:
                    del event[block]
                    break
            else:
                event["session_id"] = ""

    # ---- sessions -----------------------------------------------------------------
    def session(self, start: int, campaign_share: float) -> None:
        self.stats["sessions"] += 1
        if self.bot_share and self.rng.random() < self.bot_share:
            self.stats["bot_sessions"] += 1
            self.push(_BotSession(self, start).run())
        else:
            self.push(_HumanSession(self, start, campaign_share).run())


class _SessionBase:
    def __init__(self, gen: _Generator, start: int):
        self.gen = gen
        self.rng = gen.rng
        self.t = start
        self.session_id = gen.uuid4()
        self.user_id: str | None = None
        self.events: list[tuple[int, dict]] = []
        self.page: dict = {}
        self.url: str | None = None

    def emit(self, name: str, **blocks) -> dict:
        event = {
            "event_id": self.gen.uuid4(),
            "event_name": name,
            "event_timestamp": self.gen.ts(self.t),
            "received_at": None,
            "schema_version": SCHEMA_VERSION,
            "anonymous_id": self.anonymous_id,
            "session_id": self.session_id,
            "user_id": self.user_id,
            "page": self.page,
            "device": self.device,
            "traffic": self.traffic,
        }
        if blocks:
            event.update(blocks)
        self.events.append((self.t, event))
        return event

    def visit(self, page: tuple[str, str, str], query: str = "") -> None:
        """A page load: a page_view, after which the session is on that page."""
        url = page[0] + query
        self.page = {"url": url, "path": page[1], "title": page[2], "referrer": self.url or self.referrer}
        self.url = url
        self.emit("page_view")

    def later(self, ms: int) -> None:
        self.t += max(ms, 20)


class _BotSession(_SessionBase):
    """A crawler or script: many fast page loads, no cookies kept, no cart."""

    def __init__(self, gen: _Generator, start: int):
        super().__init__(gen, start)
        self.anonymous_id = gen.uuid4()
        self.device = self.rng.choice(gen.bot_blocks)
        self.traffic = {
            "source": "(direct)",
            "medium": "(none)",
            "campaign": None,
            "content": None,
            "term": None,
        }
        self.referrer = None

    def run(self) -> list[tuple[int, dict]]:
        gen, rng, shop = self.gen, self.rng, self.gen.shop
        self.visit(gen.home_page)
        for _ in range(4 + int(rng.expovariate(1 / 15))):
            self.later(int(300 + rng.random() * 2500))
            if rng.random() < 0.3:
                category = shop.products[int(rng.random() * len(shop.products))].category
                self.visit(shop.category_page[category])
                self.emit("category_view", properties={"category": category})
            else:
                i = int(rng.random() * len(shop.products))  # crawlers walk the catalogue evenly
                self.visit(shop.product_page[i])
                self.later(50)
                self.emit("product_view", product=shop.product_block[i])
        return self.events


class _HumanSession(_SessionBase):
    def __init__(self, gen: _Generator, start: int, campaign_share: float):
        super().__init__(gen, start)
        rng = self.rng
        day = start // DAY_MS
        self.weekend = (day + 3) % 7 >= 5
        self.day = day
        self.cart: dict[int, int] = {}
        self.cart_id: str | None = None
        self.product: int | None = None
        self.landing_product: int | None = None
        self.kind = self.pick_visitor()
        self.campaign = rng.random() < campaign_share
        self.pick_traffic()

    # -- who -----------------------------------------------------------------------
    def pick_visitor(self) -> str:
        gen, rng = self.gen, self.rng
        r = rng.random()
        if r < 0.30:
            # registered shop users: a fixed pool, heavy users return more often;
            # each has a phone and a computer (two anonymous ids, one user id)
            k = int(REGISTERED_USERS * rng.random() ** 2.5)
            slot = 0 if rng.random() < 0.6 else 1
            self.anonymous_id = _derived_uuid(f"user-device-{slot}", k)
            devices = gen.mobile_devices if slot == 0 else gen.desktop_devices
            self.device = gen.device_of(self.anonymous_id, devices)
            self.member_id = f"user-{k:06d}"
            if r < 0.18:
                self.user_id = self.member_id  # still signed in from an earlier visit
                return "member"
            return "member_guest"  # registered, but signs in only when asked to
        if r < 0.55:
            g = int(RETURNING_GUESTS * rng.random() ** 2)
            self.anonymous_id = _derived_uuid("guest", g)
            self.device = gen.device_of(self.anonymous_id, gen.all_devices)
            return "returning"
        self.anonymous_id = gen.uuid4()
        cum = gen.device_cum[1 if self.weekend else 0]
        self.device = gen.device_blocks[bisect_left(cum, rng.random() * cum[-1])]
        return "new"

    # -- from where -----------------------------------------------------------------
    def pick_traffic(self) -> None:
        gen, rng, shop = self.gen, self.rng, self.gen.shop
        content = term = None
        if self.campaign:
            source, medium, self.referrer = rng.choice(CAMPAIGN_TRAFFIC)
            day = date(1970, 1, 1) + timedelta(days=self.day)
            campaign = f"flash_sale_{day:%Y%m%d}"
            content = "flash_banner"
            # the sale features one category, picked from the day
            categories = sorted(shop.categories)
            self.sale_category = categories[self.day % len(categories)]
            landing = "sale" if rng.random() < 0.6 else "category"
        else:
            cum = gen.traffic_cum
            weight, source, medium, campaigns, contents, self.referrer, landings = TRAFFIC[
                bisect_left(cum, rng.random() * cum[-1])
            ]
            if self.kind != "new" and source not in ("(direct)", "newsletter") and rng.random() < 0.3:
                # returning visitors type the address or come from the newsletter more often
                source, medium, campaigns, contents, self.referrer, landings = TRAFFIC[0][1:]
            campaign = rng.choice(campaigns) if campaigns else None
            content = rng.choice(contents) if contents else None
            r = rng.random()
            landing = (
                "home" if r < landings[0] else "category" if r < landings[0] + landings[1] else "product"
            )
        self.landing = landing
        if landing == "product":
            self.landing_product = self.gen.popular_product()
            if medium == "cpc":
                p = shop.products[self.landing_product]
                term = f"{p.brand} {_leaf(p.category)}".lower()
        self.traffic = {
            "source": source,
            "medium": medium,
            "campaign": campaign,
            "content": content,
            "term": term,
        }
        self.utm = ""
        if campaign:
            params = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
            if content:
                params["utm_content"] = content
            if term:
                params["utm_term"] = term
            self.utm = "?" + urlencode(params)

    # -- what they do ---------------------------------------------------------------
    def view_product(self, i: int, query: str = "") -> None:
        self.visit(self.gen.shop.product_page[i], query)
        self.later(int(100 + self.rng.random() * 500))
        self.emit("product_view", product=self.gen.shop.product_block[i])
        self.product = i

    def view_category(self, category: str, query: str = "") -> None:
        self.visit(self.gen.shop.category_page[category], query)
        self.later(int(100 + self.rng.random() * 400))
        self.emit("category_view", properties={"category": category})
        self.product = None

    def search(self) -> None:
        gen, rng, shop = self.gen, self.rng, self.gen.shop
        if rng.random() < 0.08:
            query = rng.choice(ZERO_RESULT_QUERIES)
        else:
            p = shop.products[gen.popular_product()]
            r = rng.random()
            query = (
                p.brand.lower()
                if r < 0.35
                else _leaf(p.category)
                if r < 0.7
                else f"{p.brand} {_leaf(p.category)}"
            )
            query = query.lower()
        found = shop.matches(query)
        url = f"{SHOP}/search?q={quote_plus(query)}"
        self.visit((url, "/search", f"Search: {query} | {SHOP_NAME}"))
        self.later(int(150 + rng.random() * 500))
        self.emit("search", search={"query": query, "results_count": len(found)})
        self.product = None
        if found and rng.random() < 0.65:
            self.later(self.gen.dwell(12))
            # results are listed by popularity: the top ones get the clicks
            pick = min(int(rng.random() * len(found)), int(rng.random() * len(found)))
            self.view_product(found[pick])

    def cart_block(self) -> dict:
        cents = sum(self.gen.shop.cents[i] * q for i, q in self.cart.items())
        return {"cart_id": self.cart_id, "value": cents / 100, "currency": CURRENCY}

    def add_to_cart(self) -> None:
        rng = self.rng
        i = self.product
        r = rng.random()
        quantity = 1 if r < 0.85 else 2 if r < 0.97 else 3
        if self.cart_id is None:
            self.cart_id = self.gen.uuid4()
        self.cart[i] = self.cart.get(i, 0) + quantity
        self.later(self.gen.dwell(20))
        self.emit(
            "add_to_cart", product=self.gen.shop.product_block[i], quantity=quantity, cart=self.cart_block()
        )

    def visit_cart(self) -> None:
        gen, rng = self.gen, self.rng
        self.visit((SHOP + "/cart", "/cart", f"Your cart | {SHOP_NAME}"))
        self.product = None
        r = rng.random()
        if r < 0.2 and self.cart:
            lines = list(self.cart)
            i = lines[int(rng.random() * len(lines))]
            old = self.cart[i]
            new = old + 1 if old == 1 or rng.random() < 0.6 else old - 1
            self.cart[i] = new
            self.later(gen.dwell(8))
            self.emit(
                "update_cart_quantity",
                product=gen.shop.product_block[i],
                quantity=new,
                cart=self.cart_block(),
            )
        elif r < 0.32 and self.cart:
            lines = list(self.cart)
            i = lines[int(rng.random() * len(lines))]
            removed = self.cart.pop(i)
            self.later(gen.dwell(8))
            self.emit(
                "remove_from_cart",
                product=gen.shop.product_block[i],
                quantity=removed,
                cart=self.cart_block(),
            )

    def identify(self, name: str, page: tuple[str, str, str], user_id: str, method: str) -> None:
        self.later(self.gen.dwell(5))
        self.visit(page)
        self.later(self.gen.dwell(25))
        self.user_id = user_id
        self.emit(name, properties={"method": method})

    def sign_in(self) -> None:
        method = "password" if self.rng.random() < 0.75 else "google"
        self.identify("sign_in", (SHOP + "/account/sign-in", "/account/sign-in", f"Sign in | {SHOP_NAME}"),
                      self.member_id, method)  # fmt: skip

    def sign_up(self) -> None:
        self.gen.stats["sign_ups"] += 1
        user_id = f"user-{self.rng.getrandbits(48):012x}"
        method = "email" if self.rng.random() < 0.8 else "google"
        self.identify("sign_up", (SHOP + "/account/sign-up", "/account/sign-up", f"Create account | {SHOP_NAME}"),
                      user_id, method)  # fmt: skip

    def checkout(self, buyer: bool) -> None:
        gen, rng, shop = self.gen, self.rng, self.gen.shop
        self.visit_cart()
        if not self.cart:
            return
        self.later(gen.dwell(15))
        self.visit((SHOP + "/checkout", "/checkout", f"Checkout | {SHOP_NAME}"))
        self.later(int(200 + rng.random() * 800))
        self.emit("checkout_start", cart=self.cart_block())
        if self.user_id is None:
            if self.kind == "member_guest" and rng.random() < 0.8:
                self.sign_in()
            elif rng.random() < 0.3:
                self.sign_up()
        if rng.random() >= (0.72 if buyer else 0.2):
            return  # abandoned at checkout
        self.later(gen.dwell(120, 0.6))
        items = []
        cents = 0
        for i, quantity in self.cart.items():
            p = shop.products[i]
            cents += shop.cents[i] * quantity
            items.append(
                {"product_id": p.id, "name": p.name, "category": p.category, "brand": p.brand}
                | {"price": p.price, "quantity": quantity}
            )
        order = {"order_id": f"ord-{rng.getrandbits(64):016x}", "revenue": cents / 100, "currency": CURRENCY}
        order["items"] = items
        self.visit((SHOP + "/checkout/confirmation", "/checkout/confirmation", f"Thank you | {SHOP_NAME}"))
        self.later(int(100 + rng.random() * 300))
        self.emit("purchase", order=order, cart=self.cart_block())
        gen.stats["orders"] += 1
        self.cart = {}
        self.cart_id = None

    def run(self) -> list[tuple[int, dict]]:
        gen, rng, shop = self.gen, self.rng, self.gen.shop
        mobile = self.device["type"] in ("mobile", "tablet")
        # arrive
        if self.landing == "product":
            self.view_product(self.landing_product, self.utm)
        elif self.landing == "category":
            category = getattr(self, "sale_category", None) or shop.products[gen.popular_product()].category
            self.view_category(category, self.utm)
        elif self.landing == "sale":
            self.visit((SHOP + "/sale/flash-sale", "/sale/flash-sale", f"Flash sale | {SHOP_NAME}"), self.utm)
        else:
            self.visit(gen.home_page, self.utm)
        bounce = 0.42 if self.kind == "new" else 0.3
        if mobile:
            bounce += 0.06
        if self.campaign:
            bounce -= 0.1
        if rng.random() < bounce:
            return self.events
        # intent: most visitors browse, a few came to buy
        buy = 0.14
        if self.kind == "member":
            buy *= 1.8
        elif self.kind != "new":
            buy *= 1.3
        if self.campaign or self.traffic["medium"] in ("email", "cpc", "affiliate"):
            buy *= 1.5
        elif self.traffic["medium"] in ("social", "paid_social"):
            buy *= 0.7
        if mobile:
            buy *= 0.8
        buyer = rng.random() < buy
        if self.kind == "member_guest" and rng.random() < 0.15:
            self.sign_in()
        steps = 1 + min(int(rng.expovariate(1 / (9 if buyer else 5))), 40)
        median_dwell = 18 if mobile else 28
        for _ in range(steps):
            if self.product is not None and rng.random() < (0.3 if buyer else 0.05):
                self.add_to_cart()
            self.later(gen.dwell(median_dwell))
            if self.cart and rng.random() < (0.3 if buyer else 0.03):
                self.checkout(buyer)
                if not self.cart or not buyer:
                    break
                continue
            r = rng.random()
            if r < 0.5:
                if self.product is not None and rng.random() < 0.5:
                    i = gen.product_in(shop.products[self.product].category)
                elif self.campaign and rng.random() < 0.5:
                    i = gen.product_in(self.sale_category)
                else:
                    i = gen.popular_product()
                self.view_product(i)
            elif r < 0.65:
                self.view_category(shop.products[gen.popular_product()].category)
            elif r < 0.8:
                self.search()
            elif r < 0.9 and self.cart:
                self.visit_cart()
            elif r < 0.95:
                self.visit(gen.home_page)
                self.product = None
            else:
                break
        return self.events


def generate_events(
    seed: int = 42,
    start: str | date | datetime | None = None,
    days: float | None = None,
    events: int | None = None,
    *,
    sessions_per_day: float | None = None,
    bot_share: float = 0.02,
    duplicate_share: float = 0.0,
    invalid_share: float = 0.0,
    late_share: float = 0.0,
    catalogue: list[Product] | None = None,
    stats: dict | None = None,
) -> Iterator[dict]:
    """Yield simulated raw events (contract v1 dicts) in received_at order.

    Size: ``days`` (every session starting in [start, start + days)), ``events`` (exactly
    that many events, counting dirty ones), or both (the session rate is set so that about
    ``events`` fit in ``days``; the count is exact, the end approximate). ``start`` defaults
    to today 00:00 UTC minus the span. Events share nested dicts within a session: treat
    them as read-only. ``stats``, if given, is filled with counters (sessions, orders, ...).
    """
    if days is None and events is None:
        raise ValueError("give days, events or both")
    if days is not None and days <= 0 or events is not None and events < 0:
        raise ValueError("days must be > 0 and events >= 0")
    for name, share in (("bot_share", bot_share), ("duplicate_share", duplicate_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
    for name, share in (("invalid_share", invalid_share), ("late_share", late_share)):
        if not 0 <= share <= 1:
            raise ValueError(f"{name} must be between 0 and 1")
    rate = sessions_per_day or DEFAULT_SESSIONS_PER_DAY
    span = days
    if span is None:
        span = max(events / (rate * MEAN_EVENTS_PER_SESSION), 1 / 24)
    start_dt = parse_start(start, span)
    start_ms = int(start_dt.timestamp() * 1000)
    if days is not None and events is not None and sessions_per_day is None:
        rate = events / (MEAN_EVENTS_PER_SESSION * expected_day_factors(start_ms, days))
    end_ms = start_ms + int(days * DAY_MS) if days is not None and events is None else None
    counters = stats if stats is not None else {}
    for key in ("sessions", "bot_sessions", "orders", "sign_ups", "duplicates", "invalid", "late"):
        counters[key] = 0
    counters.update(start=start_dt.isoformat(), sessions_per_day=round(rate, 1), end_reached=False)
    if events == 0:
        return iter(())
    gen = _Generator(
        seed,
        start_dt,
        rate,
        bot_share,
        duplicate_share,
        invalid_share,
        late_share,
        catalogue if catalogue is not None else load_catalogue(),
        counters,
    )
    return gen.run(end_ms, events)
