"""A customer's time zone, from where Intercom says the contact is (issue 20, quiet hours in the customer's zone).

Intercom's contact has `location: {country, region, city}` in words ("Ireland", "New South Wales", "Sydney"); the
older user model had `location_data` with a `timezone` and a `country_code`. The answer comes from the time zone
database's own tables (`zone.tab`: each country's zones, with the part of the country each covers; `iso3166.tab`:
country names), from the pinned tzdata package, so it changes when the world's zones do and with nothing of ours:

- an IANA zone Intercom gives is taken as it is;
- a country whose zones all keep the same time (Ireland; Germany, whose Büsingen keeps Berlin's) is that zone;
- otherwise a city that names one of the country's zones ("Los Angeles"), or a region one zone's description
  names ("New South Wales (most areas)", "Canary Islands"), preferring the one for most of it;
- otherwise none: the caller reads its quiet hours in the account's zone.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo

from integrations.intercom.json_fields import JsonObject, PayloadError

# Country names GeoIP (and so Intercom) writes differently from iso3166.tab.
COUNTRY_ALIASES = {
    "united kingdom": "GB", "great britain": "GB", "uk": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northern ireland": "GB", "south korea": "KR", "republic of korea": "KR", "north korea": "KP",
    "czechia": "CZ", "russian federation": "RU", "viet nam": "VN", "usa": "US", "united states of america": "US",
    "hong kong sar": "HK", "macao": "MO", "the netherlands": "NL", "turkiye": "TR", "ivory coast": "CI",
    "democratic republic of the congo": "CD", "republic of the congo": "CG", "iran, islamic republic of": "IR",
}  # fmt: skip
MOST_AREAS = "most"


@dataclass(frozen=True)
class CustomerLocation:
    """Where Intercom says a contact is, as far as it says."""

    country: str = ""
    region: str = ""
    city: str = ""
    country_code: str = ""
    time_zone: str = ""  # the older user model's location_data.timezone

    @classmethod
    def of_contact(cls, contact: JsonObject) -> CustomerLocation | None:
        """From a contact (`location`) or an older user (`location_data`); None where neither says anything, or
        says it unreadably (it only decides whose night the quiet hours keep: never worth failing a send over)."""
        try:
            return cls._of(contact)
        except PayloadError:
            return None

    @classmethod
    def _of(cls, contact: JsonObject) -> CustomerLocation | None:
        if place := contact.optional_object("location"):
            found = cls(
                _text(place, "country"), _text(place, "region"), _text(place, "city"), _text(place, "country_code")
            )
        elif place := contact.optional_object("location_data"):
            found = cls(
                _text(place, "country_name"), _text(place, "region_name"), _text(place, "city_name"),
                _text(place, "country_code"), _text(place, "timezone"),
            )  # fmt: skip
        else:
            return None
        return found if any((found.country, found.country_code, found.time_zone)) else None

    @property
    def words(self) -> str:
        return ", ".join(part for part in (self.city, self.region, self.country or self.country_code) if part)


def _text(place: JsonObject, key: str) -> str:
    return (place.optional(key, str) or "").strip()[:100]


def time_zone_of(location: CustomerLocation | None) -> str | None:
    """The IANA zone `location` is in, where it names one; None where it doesn't (no country, or a country of
    several zones with no city or region that picks one)."""
    if location is None:
        return None
    if location.time_zone and _is_zone(location.time_zone):
        return location.time_zone
    zones = _zones().get(_country_code(location))
    if not zones:
        return None
    if _one_time(tuple(zone for zone, _ in zones)):
        return zones[0][0]
    return _zone_of_city(zones, location.city) or _zone_of_region(zones, location.region)


def _zone_of_city(zones: list[tuple[str, str]], city: str) -> str | None:
    wanted = _plain(city)
    found = [zone for zone, _ in zones if wanted and _plain(zone.rsplit("/", 1)[-1].replace("_", " ")) == wanted]
    return found[0] if len(found) == 1 else None


def _zone_of_region(zones: list[tuple[str, str]], region: str) -> str | None:
    """The zone whose description names `region` as a whole part ("Baja California" is America/Tijuana's, not
    Mazatlan's "Baja California Sur, Nayarit (most areas), Sinaloa"), or whose city it is."""
    wanted = _plain(region)
    if not wanted:
        return None
    found = [(zone, about) for zone, about in zones if wanted in _parts(about) or wanted == _plain(zone.split("/")[-1])]
    if len(found) > 1:  # "New South Wales (most areas)" over "New South Wales (Yancowinna)"
        found = [(zone, about) for zone, about in found if MOST_AREAS in _plain(about)]
    return found[0][0] if len(found) == 1 else None


def _parts(about: str) -> set[str]:
    """The places a zone.tab description names: "Atlantic - NS (most areas), PE" names "atlantic", "ns", "pe"."""
    bare = re.sub(r"\([^)]*\)", "", about)
    return {_plain(part) for part in re.split(r" - |[,;&]", bare) if _plain(part)}


def _country_code(location: CustomerLocation) -> str:
    code = location.country_code.upper()
    if len(code) == 2 and code in _zones():
        return code
    name = _plain(location.country)
    if len(name) == 2 and name.upper() in _zones():
        return name.upper()
    return COUNTRY_ALIASES.get(name) or _countries().get(name, "")


def _plain(text: str) -> str:
    """Lower case, without accents or punctuation, single spaces: "Zürich" and "zurich" are one name."""
    bare = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return " ".join("".join(char if char.isalnum() else " " for char in bare).split())


def _is_zone(name: str) -> bool:
    """A zone of the pinned tzdata (not a host's posix/ or right/ copies, which another host may lack)."""
    return name in _zone_names() and "/" in name


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(files("tzdata").joinpath("zones").read_text(encoding="utf-8").split())


def _table(name: str) -> list[list[str]]:
    text = files("tzdata").joinpath("zoneinfo", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def _zones() -> dict[str, list[tuple[str, str]]]:
    """Each country's zones, from zone.tab: (zone, the part of the country it covers), in the table's order."""
    zones: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for row in _table("zone.tab"):
        zones[row[0]].append((row[2], row[3] if len(row) > 3 else ""))
    return dict(zones)


@cache
def _countries() -> dict[str, str]:
    """Country names (plain) to their codes, from iso3166.tab."""
    return {_plain(name): code for code, name in _table("iso3166.tab")}


@cache
def _one_time(zones: tuple[str, ...]) -> bool:
    """Whether the zones keep the same time now and through the next year (tried every fortnight)."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    moments = [start + timedelta(days=14 * n) for n in range(27)]
    offsets = {tuple(moment.astimezone(ZoneInfo(zone)).utcoffset() for moment in moments) for zone in zones}
    return len(offsets) == 1
