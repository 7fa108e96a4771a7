"""A customer's time zone from where Intercom says the contact is: only where that names one zone."""

import pytest

from integrations.intercom.json_fields import JsonObject
from integrations.intercom.location import CustomerLocation, time_zone_of


@pytest.mark.parametrize(
    ("location", "zone"),
    [
        (CustomerLocation("Ireland", "Dublin", "Dublin"), "Europe/Dublin"),
        (CustomerLocation("Japan"), "Asia/Tokyo"),
        # Germany's second zone, Büsingen, keeps Berlin's time all year: one zone as far as the clock goes.
        (CustomerLocation("Germany", "Bavaria", "Munich"), "Europe/Berlin"),
        # GeoIP's names for what iso3166.tab calls "Britain (UK)" and "Korea (South)".
        (CustomerLocation("United Kingdom", "England", "London"), "Europe/London"),
        (CustomerLocation("South Korea"), "Asia/Seoul"),
        (CustomerLocation(country_code="fr"), "Europe/Paris"),
        # A country of several zones: a city that names one, a region one zone's description names.
        (CustomerLocation("United States", "California", "Los Angeles"), "America/Los_Angeles"),
        (CustomerLocation("Australia", "New South Wales", "Newcastle"), "Australia/Sydney"),
        (CustomerLocation("Spain", "Canary Islands", "Las Palmas"), "Atlantic/Canary"),
        (CustomerLocation("Brazil", "", "São Paulo"), "America/Sao_Paulo"),
        # The older user model says the zone itself.
        (CustomerLocation("", time_zone="America/Chicago"), "America/Chicago"),
    ],
)
def test_a_location_that_names_one_zone(location, zone):
    assert time_zone_of(location) == zone


@pytest.mark.parametrize(
    "location",
    [
        None,
        CustomerLocation("United States", "California", "San Francisco"),  # a state of one zone, a city of none
        CustomerLocation("Canada"),
        CustomerLocation("Atlantis", "", "Poseidonia"),
        CustomerLocation("", time_zone="Mars/Olympus_Mons"),
        CustomerLocation("", time_zone="../../etc/passwd"),
    ],
)
def test_a_location_that_doesnt_is_none(location):
    assert time_zone_of(location) is None


def test_read_from_a_contact_or_an_older_user_and_nothing_from_an_empty_one():
    contact = {"location": {"type": "location", "country": "Ireland", "region": "Dublin", "city": "Dublin"}}
    user = {"location_data": {"country_name": "France", "country_code": "FR", "timezone": "Europe/Paris"}}
    assert CustomerLocation.of_contact(JsonObject(contact, "")) == CustomerLocation("Ireland", "Dublin", "Dublin")
    assert time_zone_of(CustomerLocation.of_contact(JsonObject(user, ""))) == "Europe/Paris"
    assert CustomerLocation.of_contact(JsonObject({"location": {"type": "location", "country": None}}, "")) is None
    assert CustomerLocation.of_contact(JsonObject({}, "")) is None
    # Unreadable: no location, not a failed send.
    assert CustomerLocation.of_contact(JsonObject({"location": {"country": 5}}, "")) is None
    assert CustomerLocation.of_contact(JsonObject({"location": "Dublin"}, "")) is None
