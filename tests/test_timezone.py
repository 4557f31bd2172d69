"""The EAS TimeZone blob (eas.items.timezone): layout, round trips, real devices' blobs,
and garbage."""

from __future__ import annotations

import base64
import calendar
import struct
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from eas.items import timezone as tz
from eas.protocol.errors import ProtocolError

SAMPLE = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo",
          "Pacific/Chatham", "UTC", "America/Los_Angeles", "Europe/London", "Australia/Lord_Howe",
          "America/Santiago", "Europe/Dublin", "Asia/Tokyo"]

# Blobs real clients and servers sent (found in other projects' test data), checked
# field by field below.
PACIFIC = ("4AEAAFAAYQBjAGkAZgBpAGMAIABTAHQAYQBuAGQAYQByAGQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAAB"
           "AAIAAAAAAAAAAAAAAFAAYQBjAGkAZgBpAGMAIABEAGEAeQBsAGkAZwBoAHQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
           "AAAAAAMAAAACAAIAAAAAAAAAxP///w==")
EASTERN_SHORT_NAMES = ("LAEAAEUAUwBUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAAB"
                       "AAIAAAAAAAAAAAAAAEUARABUAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                       "AAAAAAMAAAACAAIAAAAAAAAAxP///w==")
BERLIN = ("xP///1cALgAgAEUAdQByAG8AcABlACAAUwB0AGEAbgBkAGEAcgBkACAAVABpAG0AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAoAAAAF"
          "AAMAAAAAAAAAAAAAACgAVQBUAEMAKwAwADEAOgAwADAAKQAgAEEAbQBzAHQAZQByAGQAYQBtACwAIABCAGUAcgBsAGkAbgAsACAA"
          "QgAAAAMAAAAFAAIAAAAAAAAAxP///w==")
MOSCOW = ("TP///ygAVQBUAEMAKwAwADMAOgAwADAAKQAgAE0AbwBzAGMAbwB3ACwAIABTAHQALgAgAFAAZQB0AGUAcgBzAGIAdQAAAAAAAAAA"
          "AAAAAAAAAAAAAAAAAEMAdQBzAHQAbwBtAGkAegBlAGQAIABUAGkAbQBlACAAWgBvAG4AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
          "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")


def fields(blob: bytes) -> dict[str, object]:
    """The blob read with its own struct layout (not the module's), names decoded."""
    bias, = struct.unpack_from("<l", blob, 0)
    std_name = blob[4:68].decode("utf-16-le").split("\0")[0]
    std_date = struct.unpack_from("<8H", blob, 68)
    std_bias, = struct.unpack_from("<l", blob, 84)
    dst_name = blob[88:152].decode("utf-16-le").split("\0")[0]
    dst_date = struct.unpack_from("<8H", blob, 152)
    dst_bias, = struct.unpack_from("<l", blob, 168)
    return {"bias": bias, "std_name": std_name, "std_date": std_date, "std_bias": std_bias,
            "dst_name": dst_name, "dst_date": dst_date, "dst_bias": dst_bias}


def _rule_day(date: tuple[int, ...], year: int) -> datetime:
    """The local time a wYear-0 SYSTEMTIME names in ``year`` (independent of the module)."""
    _, month, weekday, nth, hour, minute = date[:6]
    days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1)
            if (calendar.weekday(year, month, d) + 1) % 7 == weekday]
    day = days[-1] if nth == 5 or nth > len(days) else days[nth - 1]
    return datetime(year, month, day, hour, minute)


def blob_offset(blob: bytes, instant: datetime, year: int) -> timedelta:
    """The UTC offset a blob gives at a UTC instant of ``year``, as a device computes it."""
    f = fields(blob)
    bias = int(f["bias"])  # type: ignore[call-overload]
    dst_bias = int(f["dst_bias"])  # type: ignore[call-overload]
    std_date, dst_date = f["std_date"], f["dst_date"]
    assert isinstance(std_date, tuple) and isinstance(dst_date, tuple)
    if dst_date[1] == 0:
        return timedelta(minutes=-bias)
    naive = instant.replace(tzinfo=None)
    start = _rule_day(dst_date, year) + timedelta(minutes=bias)  # local standard -> UTC
    end = _rule_day(std_date, year) + timedelta(minutes=bias + dst_bias)  # local daylight -> UTC
    in_dst = start <= naive < end if start < end else not end <= naive < start
    return timedelta(minutes=-(bias + dst_bias) if in_dst else -bias)


def test_layout_is_172_bytes_and_base64_on_the_wire() -> None:
    blob = tz.to_blob("Europe/Berlin", 2026)
    assert len(blob) == 172
    assert base64.b64decode(tz.to_wire("Europe/Berlin", 2026)) == blob


@pytest.mark.parametrize("zone", SAMPLE)
@pytest.mark.parametrize("year", [2026, 2031])
def test_blob_gives_the_zones_offsets_all_year(zone: str, year: int) -> None:
    """Every hour of the year, the offset the blob's rules give equals zoneinfo's."""
    blob = tz.to_blob(zone, year)
    z = ZoneInfo(zone)
    t = datetime(year, 1, 1, tzinfo=UTC)
    while t.year == year:
        assert blob_offset(blob, t, year) == t.astimezone(z).utcoffset(), (zone, t)
        t += timedelta(hours=1)


@pytest.mark.parametrize("zone", SAMPLE)
def test_round_trip(zone: str) -> None:
    assert tz.from_blob(tz.to_blob(zone)) == zone
    assert tz.from_blob(tz.to_blob(zone, 2030), 2030) == zone


def test_known_fields_berlin_and_new_york() -> None:
    berlin = fields(tz.to_blob("Europe/Berlin", 2026))
    assert berlin["bias"] == -60 and berlin["dst_bias"] == -60 and berlin["std_bias"] == 0
    assert berlin["std_date"] == (0, 10, 0, 5, 3, 0, 0, 0)  # last Sunday of October, 03:00
    assert berlin["dst_date"] == (0, 3, 0, 5, 2, 0, 0, 0)  # last Sunday of March, 02:00
    assert berlin["std_name"] == "Europe/Berlin"
    ny = fields(tz.to_blob("America/New_York", 2026))
    assert ny["bias"] == 300
    assert ny["std_date"] == (0, 11, 0, 1, 2, 0, 0, 0)  # first Sunday of November
    assert ny["dst_date"] == (0, 3, 0, 2, 2, 0, 0, 0)  # second Sunday of March
    sydney = fields(tz.to_blob("Australia/Sydney", 2026))  # southern hemisphere: DST over new year
    assert sydney["bias"] == -600
    assert sydney["std_date"] == (0, 4, 0, 1, 3, 0, 0, 0)
    assert sydney["dst_date"] == (0, 10, 0, 1, 2, 0, 0, 0)
    kolkata = fields(tz.to_blob("Asia/Kolkata", 2026))
    assert kolkata["bias"] == -330 and kolkata["dst_bias"] == 0
    assert kolkata["std_date"] == kolkata["dst_date"] == (0,) * 8
    chatham = fields(tz.to_blob("Pacific/Chatham", 2026))
    assert chatham["bias"] == -765 and chatham["dst_date"][4:6] == (2, 45)  # type: ignore[index]


def test_real_pacific_blob() -> None:
    """Exchange's Pacific Standard Time blob: our America/Los_Angeles has the same numbers,
    and the Windows name maps back to it."""
    real = base64.b64decode(PACIFIC)
    theirs, ours = fields(real), fields(tz.to_blob("America/Los_Angeles", 2026))
    assert theirs["std_name"] == "Pacific Standard Time" and theirs["bias"] == 480
    for key in ("bias", "std_date", "std_bias", "dst_date", "dst_bias"):
        assert theirs[key] == ours[key], key
    assert tz.from_wire(PACIFIC) == "America/Los_Angeles"


def test_real_blobs_map_to_zones() -> None:
    assert tz.from_wire(EASTERN_SHORT_NAMES) == "America/New_York"  # "EST": not a zone name
    assert tz.from_wire(BERLIN) == "Europe/Berlin"  # "W. Europe Standard Time"
    berlin = fields(base64.b64decode(BERLIN))
    assert berlin["std_date"] == (0, 10, 0, 5, 3, 0, 0, 0) and berlin["dst_date"] == (0, 3, 0, 5, 2, 0, 0, 0)
    # A customised Moscow zone (no DST, UTC+3, a display name): a fixed offset.
    moscow = tz.from_wire(MOSCOW)
    assert moscow == "Etc/GMT-3"
    assert datetime(2026, 7, 1, tzinfo=ZoneInfo(moscow)).utcoffset() == timedelta(hours=3)


def test_fourth_sunday_matches_last_sunday() -> None:
    """A rule naming the 4th Sunday of October when that is the last (2026: the 25th) is
    the same zone as our "last Sunday"."""
    blob = bytearray(base64.b64decode(BERLIN))
    struct.pack_into("<8H", blob, 68, 0, 10, 0, 4, 3, 0, 0, 0)
    assert tz.from_blob(bytes(blob), 2026) == "Europe/Berlin"


def test_unknown_name_prefers_the_common_zone() -> None:
    blob = bytearray(tz.to_blob("Europe/Berlin", 2026))
    blob[4:68] = "Somewhere".encode("utf-16-le").ljust(64, b"\0")
    assert tz.from_blob(bytes(blob), 2026) == "Europe/Berlin"
    blob = bytearray(tz.to_blob("Asia/Kolkata", 2026))
    blob[4:68] = bytes(64)
    assert tz.from_blob(bytes(blob), 2026) == "Asia/Kolkata"  # half hour: no Etc/GMT zone


def test_fixed_offsets() -> None:
    assert tz.from_blob(bytes(172)) == "UTC"
    blob = bytearray(172)
    struct.pack_into("<l", blob, 0, 300)
    assert tz.from_blob(bytes(blob)) == "Etc/GMT+5"  # Etc/GMT+5 is five hours behind UTC
    struct.pack_into("<l", blob, 0, -540)
    assert tz.from_blob(bytes(blob)) == "Etc/GMT-9"


def test_rules_no_zone_has_fall_back_to_same_offsets() -> None:
    """Berlin's offsets with a transition hour no zone uses: still a zone with Berlin's
    offsets and transition months."""
    blob = bytearray(tz.to_blob("Europe/Berlin", 2026))
    blob[4:68] = bytes(64)
    struct.pack_into("<8H", blob, 68, 0, 10, 0, 5, 4, 17, 0, 0)
    zone = tz.from_blob(bytes(blob), 2026)
    z = ZoneInfo(zone)
    assert datetime(2026, 1, 1, tzinfo=z).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 7, 1, tzinfo=z).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("data", [b"", b"\0" * 171, b"\0" * 173, "x" * 172])
def test_wrong_size_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        tz.from_blob(data)


@pytest.mark.parametrize("offset,value", [
    (0, struct.pack("<l", 10**6)),  # bias beyond a day
    (168, struct.pack("<l", -(10**6))),  # daylight bias beyond a day
    (152, struct.pack("<8H", 0, 13, 0, 1, 2, 0, 0, 0)),  # month 13
    (152, struct.pack("<8H", 0, 3, 9, 1, 2, 0, 0, 0)),  # weekday 9
    (152, struct.pack("<8H", 0, 3, 0, 0, 2, 0, 0, 0)),  # 0th Sunday
    (152, struct.pack("<8H", 0, 3, 0, 1, 25, 0, 0, 0)),  # hour 25
    (152, struct.pack("<8H", 2026, 2, 0, 30, 2, 0, 0, 0)),  # absolute 30 February
])
def test_impossible_values_are_protocol_errors(offset: int, value: bytes) -> None:
    blob = bytearray(tz.to_blob("Europe/Berlin", 2026))
    blob[offset:offset + len(value)] = value
    with pytest.raises(ProtocolError):
        tz.from_blob(bytes(blob), 2026)


@pytest.mark.parametrize("text", ["not base64!", "QUJD", "", None, "A" * 5000])
def test_wire_garbage(text: str | None) -> None:
    with pytest.raises(ProtocolError):
        tz.from_wire(text)


def test_unknown_zone_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        tz.to_blob("Mars/Olympus_Mons")


def test_windows_name_maps_to_the_canonical_zone() -> None:
    """CLDR maps "India Standard Time" to the alias Asia/Calcutta; the canonical name wins."""
    blob = bytearray(tz.to_blob("Asia/Kolkata", 2026))
    blob[4:68] = "India Standard Time".encode("utf-16-le").ljust(64, b"\0")
    assert tz.from_blob(bytes(blob), 2026) == "Asia/Kolkata"
    blob = bytearray(tz.to_blob("Europe/Paris", 2026))
    blob[4:68] = "Romance Standard Time".encode("utf-16-le").ljust(64, b"\0")
    assert tz.from_blob(bytes(blob), 2026) == "Europe/Paris"  # the name decides among equal rules


@pytest.mark.parametrize("year", [1, 1900, 9999])
def test_extreme_years_do_not_crash(year: int) -> None:
    assert len(tz.to_blob("Europe/Berlin", year)) == 172


def test_named_blobs_need_no_index() -> None:
    """Our blobs and Windows-named ones are matched without building the all-zones index
    (about a second of CPU on a busy machine)."""
    tz._index.cache_clear()
    assert tz.from_blob(tz.to_blob("Australia/Sydney", 2026), 2026) == "Australia/Sydney"
    assert tz.from_wire(PACIFIC) == "America/Los_Angeles"
    assert tz._index.cache_info().currsize == 0
    assert tz.from_wire(EASTERN_SHORT_NAMES) == "America/New_York"  # "EST": this one needs it
    assert tz._index.cache_info().currsize == 1
