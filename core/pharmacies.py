"""Pharmacies: nearest-first lookup, text search, open-now, and import.

Spatial index
    ``Pharmacy.cell`` is a cell of a fixed grid of ``CELL_DEG`` (0.02°) squares
    in latitude/longitude: ``row * COLS + col`` with ``row`` counted from the
    South Pole and ``col`` from the antimeridian (-180°). A cell is about
    2.2 km north-south and 2.2 km × cos(latitude) east-west; 9,000 × 18,000
    cells fit the INTEGER column. 0.02° keeps a dense city's cell to a few
    dozen pharmacies while 25 km is still only ~23 rows of cells.

    ``nearest`` reads the cells of the bounding box of a circle (in one query
    of ``cell BETWEEN a AND b`` ranges, one or two per row of cells, all
    served by ``ix_pharmacies_cell``), orders the rows by exact haversine
    distance, and widens the circle (only the new cells are read) until the
    k-th nearest is inside it or the circle reaches ``max_km``. The box of a
    circle of radius R around (lat, lon) is lat ± R and lon ± asin(sin R /
    cos lat) (spherical, so correct far from the equator); when the circle
    holds a pole or that asin is undefined, the box spans every longitude.
    Longitudes wrap, so a search near ±180° reads cells on both sides.

Opening hours
    ``open_now`` evaluates OpenStreetMap ``opening_hours`` with the maintained
    ``opening_hours_py`` (the Rust ``opening-hours`` crate): times across
    midnight ("18:00-02:00"), and public holidays ("PH off") from the
    calendar of the country given (or inferred from coordinates).

Import
    ``import_file`` reads OpenStreetMap GeoJSON (a FeatureCollection, as
    overpass-turbo or osmtogeojson export it), Overpass JSON (``elements``,
    ``out center`` for ways) or CSV with this header (any order; ``ref``,
    ``name``, ``latitude``, ``longitude`` required; ``lat``/``lon``/``lng``
    accepted too; an optional ``source`` column overrides the file's)::

        ref,name,address,postcode,city,country,phone,opening_hours,latitude,longitude

    Rows are upserted on (source, ref) in batches, one INSERT ... ON CONFLICT
    DO UPDATE per batch, so importing a file again updates rows and never
    duplicates them; a row whose values did not change is not written at all.
    A malformed row is reported with its CSV line (or JSON feature/element
    number, from 1) and skipped; the rest are imported.
"""

from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, ColumnElement, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.db import Database
from core.models import Pharmacy, table_of

# -- the grid ------------------------------------------------------------------

CELL_DEG = 0.02
ROWS = 9000  # 180 / CELL_DEG
COLS = 18000  # 360 / CELL_DEG
EARTH_KM = 6371.0088  # mean Earth radius (IUGG)
KM_PER_DEG = EARTH_KM * math.pi / 180
# The first circle read; doubled while it holds fewer than ``limit`` pharmacies.
FIRST_RADIUS_KM = 1.0


def cell_row(lat: float) -> int:
    # The poles' rows are clamped: lat 90 would otherwise be row ROWS.
    return min(ROWS - 1, max(0, math.floor((lat + 90.0) / CELL_DEG)))


def cell_col(lon: float) -> int:
    # -180 and 180 are one meridian: both are column 0.
    return math.floor(((lon + 180.0) % 360.0) / CELL_DEG) % COLS


def cell_of(lat: float, lon: float) -> int:
    """The grid cell of a point (see the module docstring)."""
    return cell_row(lat) * COLS + cell_col(lon)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km on a spherical Earth (error < 0.5%)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _valid_point(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


Spans = list[tuple[int, int]]  # closed ranges of columns (or of cells)


def _box(lat: float, lon: float, radius_km: float) -> tuple[int, int, Spans]:
    """Rows (first, last) and column spans of the cells covering a circle."""
    dlat = radius_km / KM_PER_DEG
    lat_lo, lat_hi = lat - dlat, lat + dlat
    every: Spans = [(0, COLS - 1)]
    rows = cell_row(max(-90.0, lat_lo)), cell_row(min(90.0, lat_hi))
    if lat_lo <= -90 or lat_hi >= 90:
        return (*rows, every)  # the circle holds a pole: every longitude
    ratio = math.sin(min(math.pi / 2, radius_km / EARTH_KM)) / math.cos(math.radians(lat))
    if ratio >= 1:
        return (*rows, every)
    dlon = math.degrees(math.asin(ratio))
    first = math.floor((lon - dlon + 180.0) / CELL_DEG)
    last = math.floor((lon + dlon + 180.0) / CELL_DEG)
    if last - first + 1 >= COLS:
        return (*rows, every)
    # Unwrapped column numbers may run past either end: split at the antimeridian.
    if first < 0:
        return (*rows, [(first + COLS, COLS - 1), (0, last)])
    if last >= COLS:
        return (*rows, [(first, COLS - 1), (0, last - COLS)])
    return (*rows, [(first, last)])


def _subtract(spans: Spans, taken: Spans) -> Spans:
    out: Spans = []
    for lo, hi in spans:
        parts = [(lo, hi)]
        for t_lo, t_hi in taken:
            parts = [
                piece
                for a, b in parts
                for piece in ((a, min(b, t_lo - 1)), (max(a, t_hi + 1), b))
                if piece[0] <= piece[1]
            ]
        out.extend(parts)
    return out


def _new_cells(
    box: tuple[int, int, Spans], old: tuple[int, int, Spans] | None
) -> list[tuple[int, int]]:
    """Cell ranges in ``box`` and not in ``old`` (an earlier, smaller box)."""
    first, last, spans = box
    ranges: list[tuple[int, int]] = []
    for row in range(first, last + 1):
        fresh = spans if old is None or not old[0] <= row <= old[1] else _subtract(spans, old[2])
        for lo, hi in sorted(fresh):
            a, b = row * COLS + lo, row * COLS + hi
            if ranges and ranges[-1][1] + 1 == a:  # whole rows join into one range
                ranges[-1] = (ranges[-1][0], b)
            else:
                ranges.append((a, b))
    return ranges


# -- nearest -------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A pharmacy and its distance from the point searched."""

    id: int
    source: str
    ref: str
    name: str
    address: str | None
    postcode: str | None
    city: str | None
    country: str | None
    phone: str | None
    opening_hours: str | None
    latitude: float
    longitude: float
    distance_km: float


_T = table_of(Pharmacy)
_FIELDS = (
    _T.c.id,
    _T.c.source,
    _T.c.ref,
    _T.c.name,
    _T.c.address,
    _T.c.postcode,
    _T.c.city,
    _T.c.country,
    _T.c.phone,
    _T.c.opening_hours,
    _T.c.latitude,
    _T.c.longitude,
)


def _cells_clause(ranges: Sequence[tuple[int, int]]) -> ColumnElement[bool]:
    terms = [_T.c.cell == a if a == b else _T.c.cell.between(a, b) for a, b in ranges]
    return terms[0] if len(terms) == 1 else or_(*terms)


def nearest(
    session: Session, lat: float, lon: float, *, limit: int = 5, max_km: float = 25.0
) -> list[Found]:
    """The ``limit`` active pharmacies nearest (lat, lon), nearest first, within
    ``max_km``; ``[]`` when there is none that close (a point in the sea).

    Distances are haversine; ties go to the lower id. Reads only the cells of
    a circle widened step by step (never the whole table). Raises ValueError
    for a point that is not a latitude/longitude.
    """
    if not _valid_point(lat, lon):
        raise ValueError(f"not a point on Earth: {lat}, {lon}")
    if limit < 1 or not max_km > 0:
        return []
    # Candidates as (distance, id): the rows' other columns are read only for
    # the winners, since a dense city's cells hold hundreds of pharmacies.
    seen: list[tuple[float, int]] = []
    p1, cos1 = math.radians(lat), math.cos(math.radians(lat))
    radius = min(FIRST_RADIUS_KM, max_km)
    old: tuple[int, int, Spans] | None = None
    while True:
        box = _box(lat, lon, radius)
        ranges = _new_cells(box, old)
        if ranges:
            rows = session.execute(
                select(_T.c.id, _T.c.latitude, _T.c.longitude).where(
                    _cells_clause(ranges), _T.c.active.is_(True)
                )
            )
            for ident, lat2, lon2 in rows:
                # haversine_km, inlined: this loop is the query's hot path.
                p2 = math.radians(lat2)
                h = (
                    math.sin((p2 - p1) / 2) ** 2
                    + cos1 * math.cos(p2) * math.sin(math.radians(lon2 - lon) / 2) ** 2
                )
                seen.append((2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h))), ident))
        old = box
        seen.sort()
        # Every pharmacy within ``radius`` has been read, so the ones inside
        # it are final; farther candidates may still be beaten by unread cells.
        inside = sum(1 for d, _ in seen[:limit] if d <= radius)
        if inside >= limit or radius >= max_km:
            return _details(session, [c for c in seen[:limit] if c[0] <= min(radius, max_km)])
        # With k candidates, the k-th bounds the answer: one more read settles it.
        radius = min(max_km, seen[limit - 1][0] if len(seen) >= limit else radius * 2)


def _details(session: Session, winners: list[tuple[float, int]]) -> list[Found]:
    if not winners:
        return []
    rows = {
        row.id: row
        for row in session.execute(select(*_FIELDS).where(_T.c.id.in_([i for _, i in winners])))
    }
    return [Found(**rows[i]._mapping, distance_km=d) for d, i in winners if i in rows]


# -- text search ---------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where matching pharmacies are: a town (or part of one) to search around.

    ``label`` tells same-named towns apart ("Springfield (62701)") when the
    patient must be asked which one they meant.
    """

    label: str
    city: str | None
    postcode: str | None  # the most common one among the matches there
    country: str | None
    latitude: float
    longitude: float
    count: int


@dataclass(frozen=True)
class TextResult:
    """What a typed place matched.

    ``kind``: "postcode" (exact, spaces and case ignored), "town" (the city,
    case and accents ignored), "street" (address or name contains the text),
    or "none". ``places``: where the matches are, most pharmacies first; one
    place → search ``nearest`` around its centroid; several → ask which
    (``ambiguous``); none → say nothing matched, perhaps offering
    ``suggestions`` (towns spelled alike). ``more`` is true when places were
    left out by ``limit``.
    """

    query: str
    kind: Literal["postcode", "town", "street", "none"]
    places: tuple[Place, ...] = ()
    suggestions: tuple[str, ...] = ()
    more: bool = False

    @property
    def ambiguous(self) -> bool:
        return len(self.places) > 1

    @property
    def place(self) -> Place | None:
        """The one place matched, or None (nothing, or ambiguous)."""
        return self.places[0] if len(self.places) == 1 else None


# Matches of one town farther apart than this are different places.
PLACE_KM = 30.0
# A text search reads at most this many pharmacies (a name like "CVS").
MAX_TEXT_ROWS = 5000


def normalize_postcode(text: str | None) -> str | None:
    """Upper case without spaces ("sw1a 1aa" → "SW1A1AA"): how postcodes are stored."""
    if text is None:
        return None
    value = "".join(text.split()).upper()
    return value or None


def fold(text: str) -> str:
    """Case-, accent- and spacing-insensitive form of a name ("São  Paulo" → "sao paulo")."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().replace("-", " ").replace(",", " ").split())


def search_text(session: Session, text: str, *, limit: int = 5) -> TextResult:
    """Find where a typed postcode, town, street or pharmacy name is.

    Tries, in order: postcode (exact, indexed), town, then street/name
    contains (3+ characters). Returns at most ``limit`` places.
    """
    query = " ".join(text.split())
    if not query:
        return TextResult(query, "none")
    postcode = normalize_postcode(query)
    if postcode and any(c.isdigit() for c in postcode) and len(postcode) <= 16:
        rows = _matching(session, _T.c.postcode == postcode)
        if rows:
            return _result(query, "postcode", rows, limit)
    folded = fold(query)
    cities = [c for c in session.scalars(select(_T.c.city).distinct()) if c]
    same = [c for c in cities if fold(c) == folded]
    if same:
        return _result(query, "town", _matching(session, _T.c.city.in_(same)), limit)
    if len(query) >= 3:
        like = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = _matching(
            session, or_(_T.c.address.ilike(like, escape="\\"), _T.c.name.ilike(like, escape="\\"))
        )
        if rows:
            return _result(query, "street", rows, limit)
    return TextResult(query, "none", suggestions=_suggest(folded, cities))


def _matching(session: Session, where: ColumnElement[bool]) -> list[Any]:
    return list(
        session.execute(
            select(_T.c.city, _T.c.postcode, _T.c.country, _T.c.latitude, _T.c.longitude)
            .where(where, _T.c.active.is_(True))
            .limit(MAX_TEXT_ROWS)
        )
    )


def _suggest(folded: str, cities: list[str]) -> tuple[str, ...]:
    from rapidfuzz import fuzz, process

    by_fold: dict[str, str] = {}
    for city in cities:
        by_fold.setdefault(fold(city), city)
    hits = process.extract(folded, list(by_fold), scorer=fuzz.ratio, limit=3, score_cutoff=75)
    return tuple(by_fold[hit[0]] for hit in hits)


@dataclass
class _Cluster:
    city: str | None
    rows: list[Any] = field(default_factory=list)
    lat: float = 0.0
    lon: float = 0.0


def _result(
    query: str, kind: Literal["postcode", "town", "street"], rows: list[Any], limit: int
) -> TextResult:
    # Group by town, then split a town whose matches lie far apart (two
    # Springfields): greedy clustering around each group's running centroid.
    clusters: list[_Cluster] = []
    for row in rows:
        key = fold(row.city) if row.city else None
        home = next(
            (
                c
                for c in clusters
                if (fold(c.city) if c.city else None) == key
                and haversine_km(c.lat, c.lon, row.latitude, row.longitude) <= PLACE_KM
            ),
            None,
        )
        if home is None:
            home = _Cluster(row.city)
            clusters.append(home)
        home.rows.append(row)
        home.lat, home.lon = _centroid(home.rows)
    places = [_place(c) for c in clusters]
    names = Counter(fold(p.city) if p.city else "" for p in places)
    places = [
        p if names[fold(p.city) if p.city else ""] == 1 else _distinguished(p) for p in places
    ]
    places.sort(key=lambda p: (-p.count, p.label))
    return TextResult(query, kind, tuple(places[:limit]), more=len(places) > limit)


def _centroid(rows: Sequence[Any]) -> tuple[float, float]:
    # Mean of unit vectors: right across the antimeridian too.
    x = y = z = 0.0
    for row in rows:
        p, lam = math.radians(row.latitude), math.radians(row.longitude)
        x += math.cos(p) * math.cos(lam)
        y += math.cos(p) * math.sin(lam)
        z += math.sin(p)
    lat = math.degrees(math.atan2(z, math.hypot(x, y)))
    lon = math.degrees(math.atan2(y, x)) if (x or y) else 0.0
    return lat, lon


def _place(cluster: _Cluster) -> Place:
    postcodes = Counter(r.postcode for r in cluster.rows if r.postcode)
    countries = Counter(r.country for r in cluster.rows if r.country)
    return Place(
        label=cluster.city or "?",
        city=cluster.city,
        postcode=postcodes.most_common(1)[0][0] if postcodes else None,
        country=countries.most_common(1)[0][0] if countries else None,
        latitude=cluster.lat,
        longitude=cluster.lon,
        count=len(cluster.rows),
    )


def _distinguished(place: Place) -> Place:
    hint = place.postcode or place.country or f"{place.latitude:.2f}, {place.longitude:.2f}"
    return Place(
        f"{place.label} ({hint})",
        place.city,
        place.postcode,
        place.country,
        place.latitude,
        place.longitude,
        place.count,
    )


# -- open now ------------------------------------------------------------------


def open_now(
    opening_hours: str | None,
    at: datetime,
    tz: str,
    *,
    country: str | None,
    coords: tuple[float, float] | None = None,
) -> bool | None:
    """Whether a place with these OSM ``opening_hours`` is open at ``at``.

    ``tz`` is the place's IANA zone (a naive ``at`` is taken as wall time
    there). ``country`` (ISO 3166 alpha-2) selects the public holiday
    calendar for "PH" rules; without it, ``coords`` (lat, lon) let the
    library infer the country. With neither, "PH" rules never apply.
    None when the hours are missing, unparseable, or say "unknown".
    """
    if not opening_hours or not opening_hours.strip():
        return None
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    parsed = _parse_hours(opening_hours.strip(), tz if zone.key == tz else "UTC", country, coords)
    if parsed is None:
        return None
    # The library takes only ZoneInfo-aware (or naive) times, not datetime.UTC.
    when = at.replace(tzinfo=zone) if at.tzinfo is None else at.astimezone(zone)
    try:
        if parsed.is_unknown(when):
            return None
        return bool(parsed.is_open(when))
    except (ValueError, OverflowError, TypeError):
        return None


class _HasHours(Protocol):
    opening_hours: str | None
    country: str | None
    latitude: float
    longitude: float


def is_open(pharmacy: _HasHours, at: datetime, tz: str) -> bool | None:
    """``open_now`` for a pharmacy row or a ``Found``, with its country and place."""
    return open_now(
        pharmacy.opening_hours,
        at,
        tz,
        country=pharmacy.country,
        coords=(pharmacy.latitude, pharmacy.longitude),
    )


@lru_cache(maxsize=4096)
def _parse_hours(
    expression: str, tz: str, country: str | None, coords: tuple[float, float] | None
) -> Any:
    # Cached: a list of nearest pharmacies shows the same few expressions again
    # and again. Any means opening_hours.OpeningHours (imported here, lazily).
    import opening_hours

    zone = ZoneInfo(tz)
    code = country.strip().upper() if country and len(country.strip()) == 2 else None
    # The stubs declare no exception classes; they exist at run time.
    unknown_country: type[Exception] = getattr(opening_hours, "UnknownCountryError", ValueError)
    invalid: tuple[type[Exception], ...] = (
        getattr(opening_hours, "ParserError", ValueError),
        getattr(opening_hours, "InvalidCoordinatesError", ValueError),
        SyntaxError,
    )
    try:
        return opening_hours.OpeningHours(
            expression,
            timezone=zone,
            country=code,
            coords=coords,
            auto_country=code is None,
            auto_timezone=False,
        )
    except unknown_country:
        if code is None:
            return None
        return _parse_hours(expression, tz, None, coords)
    except invalid:
        return None


# -- import --------------------------------------------------------------------


class ImportFormatError(Exception):
    """The file is not one we can read; the message is one line."""


@dataclass(frozen=True)
class Problem:
    """A skipped row: ``where`` is "line" (CSV), "feature" or "element" (JSON)."""

    where: str
    number: int
    reason: str

    def __str__(self) -> str:
        return f"{self.where} {self.number}: {self.reason}"


@dataclass
class ImportReport:
    format: str  # "csv", "geojson" or "overpass"
    total: int = 0  # records in the file that were read (ignored ones aside)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    ignored: int = 0  # JSON elements that are not pharmacies (untagged way nodes, shops)
    problems: list[Problem] = field(default_factory=list)  # the first MAX_PROBLEMS

    @property
    def imported(self) -> int:
        return self.inserted + self.updated + self.unchanged

    def problem(self, where: str, number: int, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(where, number, reason))


MAX_PROBLEMS = 1000
BATCH = 1000  # rows per INSERT: 14 columns x 1000 stays under both backends' bind limits
CSV_COLUMNS = (
    "ref",
    "name",
    "address",
    "postcode",
    "city",
    "country",
    "phone",
    "opening_hours",
    "latitude",
    "longitude",
)
_ALIASES = {"lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude"}
_COMPARED = (
    "name",
    "address",
    "postcode",
    "city",
    "country",
    "phone",
    "opening_hours",
    "latitude",
    "longitude",
    "active",
)
Record = dict[str, Any]
Progress = Callable[[int, int], None]


def import_file(
    db: Database,
    path: str | Path,
    *,
    source: str | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH,
    now: datetime | None = None,
) -> ImportReport:
    """Import a GeoJSON / Overpass JSON / CSV file of pharmacies (see the module doc).

    ``source`` defaults to "osm" for JSON and "csv" for CSV. ``progress(done,
    total)`` is called after each batch. Each batch is its own transaction,
    so a large file does not hold SQLite's writer for its whole length; an
    interrupted import is finished by running it again. Raises
    ImportFormatError (and OSError) when the file cannot be read at all.
    """
    report, records = read_file(path, source=source)
    stamp = now or datetime.now(UTC)
    done = 0
    if progress:
        progress(0, len(records))
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        with db.transaction() as session:
            inserted, updated, unchanged = upsert(session, batch, now=stamp)
        report.inserted += inserted
        report.updated += updated
        report.unchanged += unchanged
        done += len(batch)
        if progress:
            progress(done, len(records))
    return report


def read_file(path: str | Path, *, source: str | None = None) -> tuple[ImportReport, list[Record]]:
    """Parse a file into rows ready for ``upsert`` and a report of the skipped ones."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ImportFormatError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ImportFormatError(f"{file}: is a directory") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    document: Any = None
    if text.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            # A .json that does not parse is broken JSON; anything else
            # starting with "[" (an INI file...) is judged as CSV below.
            if file.suffix.lower() in (".json", ".geojson"):
                raise ImportFormatError(
                    f"{file}: not valid JSON (line {exc.lineno}: {exc.msg})"
                ) from None
    if document is not None:
        if isinstance(document, dict) and document.get("type") == "FeatureCollection":
            items = document.get("features")
            report = ImportReport("geojson")
            reader: Iterator[tuple[int, Record | str | None]] = _geojson(items, source or "osm")
        elif isinstance(document, dict) and isinstance(document.get("elements"), list):
            report = ImportReport("overpass")
            reader = _overpass(document["elements"], source or "osm")
        else:
            raise ImportFormatError(
                f"{file}: JSON but neither a GeoJSON FeatureCollection nor Overpass JSON"
            )
        where = "feature" if report.format == "geojson" else "element"
    else:
        report = ImportReport("csv")
        reader = _csv(text, source or "csv", file)
        where = "line"
    records: list[Record] = []
    first_seen: dict[tuple[str, str], int] = {}
    for number, outcome in reader:
        if outcome is None:
            report.ignored += 1
            continue
        report.total += 1
        if isinstance(outcome, str):
            report.problem(where, number, outcome)
            continue
        key = (outcome["source"], outcome["ref"])
        if key in first_seen:
            # One INSERT cannot update a row twice (PostgreSQL refuses), and
            # the first occurrence winning is the predictable choice.
            report.problem(where, number, f"duplicate ref {key[1]!r} (first at {first_seen[key]})")
            continue
        first_seen[key] = number
        records.append(outcome)
    return report, records


def _text(value: Any, size: int) -> str | None:
    if value is None:
        return None
    out = " ".join(str(value).split())
    return out[:size] if out else None


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = (
            float(str(value).strip().replace(",", ".")) if isinstance(value, str) else float(value)
        )
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _record(
    source: str,
    ref: Any,
    name: Any,
    lat: Any,
    lon: Any,
    *,
    address: Any = None,
    postcode: Any = None,
    city: Any = None,
    country: Any = None,
    phone: Any = None,
    opening_hours: Any = None,
) -> Record | str:
    """A row for the table, or why it cannot be one."""
    ref_text = _text(ref, 1000)
    if not ref_text:
        return "no ref"
    if len(ref_text) > 64:
        return "ref longer than 64 characters"
    name_text = _text(name, 200)
    if not name_text:
        return "no name"
    if lat is None or (isinstance(lat, str) and not lat.strip()):
        return "no latitude"
    if lon is None or (isinstance(lon, str) and not lon.strip()):
        return "no longitude"
    latitude, longitude = _coordinate(lat), _coordinate(lon)
    if latitude is None or not -90 <= latitude <= 90:
        return f"latitude {lat!r} is not a number from -90 to 90"
    if longitude is None or not -180 <= longitude <= 180:
        return f"longitude {lon!r} is not a number from -180 to 180"
    code = _text(country, 10)
    hours = _text(opening_hours, 10_000)
    phone_text = _text(str(phone).split(";")[0], 100) if phone else None  # OSM: "a;b"
    postcode_text = normalize_postcode(str(postcode)) if postcode else None
    return {
        "source": source[:16],
        "ref": ref_text,
        "name": name_text,
        "address": _text(address, 300),
        "postcode": postcode_text if postcode_text and len(postcode_text) <= 16 else None,
        "city": _text(city, 100),
        "country": code.upper() if code and len(code) == 2 and code.isalpha() else None,
        "phone": phone_text[:32] if phone_text else None,
        # A cut expression would mean something else: drop it (unknown) instead.
        "opening_hours": hours if hours and len(hours) <= 500 else None,
        "latitude": latitude,
        "longitude": longitude,
        "cell": cell_of(latitude, longitude),
        "active": True,
    }


def _csv(text: str, source: str, file: Path) -> Iterator[tuple[int, Record | str | None]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise ImportFormatError(f"{file}: empty, not CSV or JSON") from None
    names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
    missing = [c for c in ("ref", "name", "latitude", "longitude") if c not in names]
    if missing:
        raise ImportFormatError(
            f"{file}: not a recognised format: a CSV needs the columns "
            f"{','.join(CSV_COLUMNS)} (missing {', '.join(missing)})"
        )
    end = reader.line_num
    while True:
        start = end + 1  # a quoted field may span lines: report where the row starts
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            yield start, f"not CSV: {exc}"
            continue
        end = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(names):
            yield start, f"{len(row)} fields, the header has {len(names)}"
            continue
        values = dict(zip(names, row, strict=True))
        yield (
            start,
            _record(
                (values.get("source") or "").strip() or source,
                values["ref"],
                values["name"],
                values["latitude"],
                values["longitude"],
                address=values.get("address"),
                postcode=values.get("postcode"),
                city=values.get("city"),
                country=values.get("country"),
                phone=values.get("phone"),
                opening_hours=values.get("opening_hours"),
            ),
        )


def _is_pharmacy(tags: dict[str, Any]) -> bool:
    # Files are usually an Overpass query for pharmacies already; this only
    # drops what such dumps carry along (untagged nodes of ways, other shops).
    if not tags:
        return False
    kinds = {tags.get("amenity"), tags.get("healthcare"), tags.get("shop")}
    tagged = any(k in tags for k in ("amenity", "healthcare", "shop"))
    return not tagged or bool(kinds & {"pharmacy", "chemist"})


def _from_tags(source: str, ref: Any, lat: Any, lon: Any, tags: dict[str, Any]) -> Record | str:
    street = tags.get("addr:street") or tags.get("addr:place")
    number = tags.get("addr:housenumber")
    address = tags.get("addr:full") or " ".join(str(p) for p in (number, street) if p) or None
    return _record(
        source,
        ref,
        tags.get("name") or tags.get("brand") or tags.get("operator") or "Pharmacy",
        lat,
        lon,
        address=address,
        postcode=tags.get("addr:postcode"),
        city=tags.get("addr:city"),
        country=tags.get("addr:country"),
        phone=tags.get("phone") or tags.get("contact:phone"),
        opening_hours=tags.get("opening_hours"),
    )


def _geojson(features: Any, source: str) -> Iterator[tuple[int, Record | str | None]]:
    if not isinstance(features, list):
        raise ImportFormatError("GeoJSON FeatureCollection without a features list")
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            yield number, "not a GeoJSON feature"
            continue
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            yield number, "properties is not an object"
            continue
        nested = props.get("tags")
        tags = {**props, **nested} if isinstance(nested, dict) else props
        if not _is_pharmacy({k: v for k, v in tags.items() if not k.startswith("@")}):
            yield number, None
            continue
        ref = feature.get("id") or props.get("@id") or props.get("id")
        point = _geometry_point(feature.get("geometry"))
        if isinstance(point, str):
            yield number, point
            continue
        yield number, _from_tags(source, ref, point[0], point[1], tags)


def _geometry_point(geometry: Any) -> tuple[Any, Any] | str:
    """(lat, lon) of a Point, or the mean vertex of a way's shape; else why not."""
    if not isinstance(geometry, dict):
        return "no geometry"
    kind: Any = geometry.get("type")
    coords: Any = geometry.get("coordinates")
    try:
        if kind == "Point":
            return coords[1], coords[0]
        if kind in ("Polygon", "MultiPolygon", "LineString"):
            ring = (
                coords[0]
                if kind == "Polygon"
                else coords[0][0]
                if kind == "MultiPolygon"
                else coords
            )
            points = ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring
            lat = sum(float(p[1]) for p in points) / len(points)
            lon = sum(float(p[0]) for p in points) / len(points)
            return lat, lon
    except (TypeError, IndexError, KeyError, ValueError, ZeroDivisionError):
        return f"bad {kind} coordinates"
    return f"unsupported geometry {kind!r}"


def _overpass(elements: list[Any], source: str) -> Iterator[tuple[int, Record | str | None]]:
    for number, element in enumerate(elements, start=1):
        if not isinstance(element, dict):
            yield number, "not an Overpass element"
            continue
        tags = element.get("tags") or {}
        if not isinstance(tags, dict) or not _is_pharmacy(tags):
            yield number, None
            continue
        kind, ident = element.get("type"), element.get("id")
        ref = f"{kind}/{ident}" if kind and ident is not None else None
        lat, lon = element.get("lat"), element.get("lon")
        center = element.get("center")
        bounds = element.get("bounds")
        if lat is None and isinstance(center, dict):
            lat, lon = center.get("lat"), center.get("lon")
        elif lat is None and isinstance(bounds, dict):
            try:
                lat = (float(bounds["minlat"]) + float(bounds["maxlat"])) / 2
                lon = (float(bounds["minlon"]) + float(bounds["maxlon"])) / 2
            except (KeyError, TypeError, ValueError):
                yield number, "bad bounds"
                continue
        if lat is None and kind in ("way", "relation"):
            yield number, f"{kind} without a center (query with `out center`)"
            continue
        yield number, _from_tags(source, ref, lat, lon, tags)


def upsert(session: Session, records: Sequence[Record], *, now: datetime) -> tuple[int, int, int]:
    """Insert or update rows on (source, ref): (inserted, updated, unchanged).

    PostgreSQL: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING. SQLite:
    per source, one indexed read of the rows already there (to count, and to
    skip the unchanged ones) and one INSERT ... ON CONFLICT DO UPDATE of the
    rest. ``records`` must not repeat a (source, ref).
    """
    inserted = updated = unchanged = 0
    by_source: dict[str, list[Record]] = {}
    for record in records:
        by_source.setdefault(record["source"], []).append(record)
    if session.get_bind().dialect.name == "postgresql":
        # One statement: unchanged rows are filtered by the WHERE of DO
        # UPDATE (so not returned), and xmax = 0 tells an insert from an
        # update. (A pre-read of ``ref IN (...)`` like SQLite's below is
        # planned badly on a table just bulk-filled, before ANALYZE.)
        written = session.execute(_pg_upsert(), [{**r, "updated_at": now} for r in records])
        flags = list(written.scalars())
        inserted = sum(1 for f in flags if f)
        return inserted, len(flags) - inserted, len(records) - len(flags)
    for source, rows in by_source.items():
        existing = {
            row.ref: row
            for row in session.execute(
                select(_T.c.ref, *(_T.c[c] for c in _COMPARED)).where(
                    _T.c.source == source, _T.c.ref.in_([r["ref"] for r in rows])
                )
            )
        }
        write: list[Record] = []
        for record in rows:
            old = existing.get(record["ref"])
            if old is None:
                inserted += 1
            elif any(getattr(old, c) != record[c] for c in _COMPARED):
                updated += 1
            else:
                unchanged += 1
                continue
            write.append({**record, "updated_at": now})
        if write:
            # One statement, compiled once and cached, run with the batch's
            # rows as parameter sets (executemany: SQLite loops in C).
            # Rendering a literal 1000-row VALUES clause instead costs
            # SQLAlchemy far more than the database spends writing.
            session.execute(_sqlite_upsert(), write)
    return inserted, updated, unchanged


@lru_cache(maxsize=1)
def _sqlite_upsert() -> Any:
    statement = sqlite_insert(_T)
    return statement.on_conflict_do_update(
        index_elements=["source", "ref"],
        set_={c: statement.excluded[c] for c in (*_COMPARED, "cell", "updated_at")},
    )


@lru_cache(maxsize=1)
def _pg_upsert() -> Any:
    statement = pg_insert(_T)
    return statement.on_conflict_do_update(
        index_elements=["source", "ref"],
        set_={c: statement.excluded[c] for c in (*_COMPARED, "cell", "updated_at")},
        where=or_(*(_T.c[c].is_distinct_from(statement.excluded[c]) for c in _COMPARED)),
    ).returning(literal_column("xmax = 0", Boolean))


def load_records(session: Session, records: Iterable[Record], *, now: datetime) -> int:
    """Upsert already-parsed rows in batches (the demo seed); the count written."""
    batch = list(records)
    total = 0
    for start in range(0, len(batch), BATCH):
        inserted, updated, _ = upsert(session, batch[start : start + BATCH], now=now)
        total += inserted + updated
    return total


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(_T)) or 0)


DEMO_FILE = Path(__file__).with_name("demo_pharmacies.json")


def seed_demo_pharmacies(session: Session, *, now: datetime | None = None) -> int:
    """The demo clinic's pharmacies (lower Manhattan), only into an empty table:
    a database with imported pharmacies is left alone. The count added."""
    if session.scalar(select(_T.c.id).limit(1)) is not None:
        return 0
    _, records = read_file(DEMO_FILE, source="demo")
    return load_records(session, records, now=now or datetime.now(UTC))


__all__ = [
    "CELL_DEG",
    "CSV_COLUMNS",
    "Found",
    "ImportFormatError",
    "ImportReport",
    "Place",
    "Problem",
    "TextResult",
    "cell_of",
    "count",
    "fold",
    "haversine_km",
    "import_file",
    "load_records",
    "nearest",
    "normalize_postcode",
    "open_now",
    "read_file",
    "search_text",
    "seed_demo_pharmacies",
    "upsert",
]
