"""Version order per ecosystem, against the orders each ecosystem's own tools give (dpkg
--compare-versions, apk version -t, PEP 440), and OSV's range rules."""

from __future__ import annotations

import pytest

from ecrd.scanning.osv import RecordInvalid, is_affected, parse_record
from ecrd.scanning.versions import (
    compare_alpine,
    compare_debian,
    compare_pypi,
    compare_semver,
    comparer,
)

pytestmark = pytest.mark.metadata_independent


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0", "1.1"),
        ("1.0~rc1", "1.0"),  # ~ sorts before anything, even the end
        ("1.0~rc1", "1.0~rc2"),
        ("1.0-1", "1.0-2"),
        ("1.0-9", "1.0-10"),
        ("2.0", "1:1.0"),  # the epoch first
        ("1.2.13.dfsg-1", "1.2.13.dfsg-1+b1"),
        ("3.0.9-1", "3.0.11-1"),
        ("1.0a", "1.0b"),
        ("1.0", "1.0a"),
        ("1.0+b1", "1.0.1"),  # letters and + sort before digits... '+' > '.' in dpkg
    ],
)
def test_debian_order(lower: str, higher: str) -> None:
    assert compare_debian(lower, higher) < 0
    assert compare_debian(higher, lower) > 0


def test_debian_equal_versions() -> None:
    assert compare_debian("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1") == 0
    assert compare_debian("1.01", "1.1") == 0  # leading zeros do not count
    assert compare_debian("0:1.0", "1.0") == 0


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.2.4-r2", "1.2.4-r3"),
        ("1.36.1-r10", "1.36.1-r15"),
        ("1.2.4_rc1", "1.2.4"),
        ("1.2.4_alpha1", "1.2.4_beta1"),
        ("1.2.4", "1.2.4_p1"),
        ("1.2.4", "1.2.4a"),
        ("1.2.9", "1.2.10"),
        ("1.2", "1.2.1"),
    ],
)
def test_alpine_order(lower: str, higher: str) -> None:
    assert compare_alpine(lower, higher) < 0
    assert compare_alpine(higher, lower) > 0


def test_pypi_order_is_pep_440() -> None:
    assert compare_pypi("2.25.0", "2.31.0") < 0
    assert compare_pypi("2.0.0rc1", "2.0.0") < 0
    assert compare_pypi("1.0.post1", "1.0") > 0
    assert compare_pypi("1.0", "1.0.0") == 0


def test_ecosystems_have_their_order() -> None:
    assert comparer("Debian:12") is compare_debian
    assert comparer("Alpine:v3.19") is compare_alpine
    assert comparer("PyPI") is compare_pypi
    assert comparer("Hackage") is None


def test_osv_ranges() -> None:
    affected = {
        "ranges": [
            {
                "type": "ECOSYSTEM",
                "events": [
                    {"introduced": "2.0"},
                    {"fixed": "2.3"},
                    {"introduced": "0"},
                    {"fixed": "1.5"},
                ],
            }
        ],
        "versions": ["9.9"],
    }
    results = {
        v: is_affected(v, affected, compare_pypi)
        for v in ("1.0", "1.5", "1.7", "2.1", "2.3", "9.9")
    }
    assert results == {
        "1.0": True,
        "1.5": False,
        "1.7": False,
        "2.1": True,
        "2.3": False,
        "9.9": True,
    }
    last = {
        "ranges": [
            {"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"last_affected": "1.4"}]}
        ]
    }
    assert is_affected("1.4", last, compare_pypi) and not is_affected("1.4.1", last, compare_pypi)
    # a GIT range names commits, not versions: never matched
    git = {"ranges": [{"type": "GIT", "events": [{"introduced": "0"}]}]}
    assert not is_affected("1.0", git, compare_pypi)


def test_records_that_are_not_osv_are_refused() -> None:
    with pytest.raises(RecordInvalid):
        parse_record({"summary": "no id"})
    record = parse_record({"id": "GHSA-x", "aliases": ["CVE-1"], "affected": [{"package": "bad"}]})
    assert (record.name, record.affected, record.severity) == ("CVE-1", (), "UNDEFINED")


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-alpha", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0"),
        ("1.9.0", "1.10.0"),
        ("4.17.20", "4.17.21"),
    ],
)
def test_npm_order_is_semver(lower: str, higher: str) -> None:
    assert compare_semver(lower, higher) < 0
    assert compare_semver(higher, lower) > 0
    assert compare_semver("1.0.0+build.1", "1.0.0") == 0
    assert comparer("npm") is compare_semver
