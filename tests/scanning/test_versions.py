"""Version order per ecosystem, against the orders each ecosystem's own tools give (dpkg
--compare-versions, apk version -t, PEP 440, rpm's own rpm.vercmp), and OSV's range rules."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import pytest

from ecrd.scanning.osv import RecordInvalid, is_affected, parse_record
from ecrd.scanning.versions import (
    compare_alpine,
    compare_debian,
    compare_pypi,
    compare_rpm,
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


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0", "1.1"),
        ("1.0-1", "1.0-2"),
        ("1.0-9.el9", "1.0-10.el9"),
        ("1.0-1.el9", "1.0-1.el9_2"),
        ("3.0.8-1.el9", "1:3.0.7-24.el9"),  # the epoch first; none is 0
        ("1.0~rc1", "1.0"),  # ~ sorts before anything, even the end
        ("1.0", "1.0^git1"),  # ^ sorts after the end, before anything else
        ("1.0^git1", "1.0.1"),
        ("1.0", "1.0a"),
        ("1.a", "1.1"),  # numbers are newer than letters
        ("2.9", "2.10"),
    ],
)
def test_rpm_order(lower: str, higher: str) -> None:
    assert compare_rpm(lower, higher) < 0
    assert compare_rpm(higher, lower) > 0


def test_rpm_equal_versions() -> None:
    assert compare_rpm("005", "5") == 0  # leading zeros do not count
    assert compare_rpm("1.0-1", "1.0") == 0  # no release on one side: versions decide
    assert compare_rpm("1..0", "1.0") == 0  # separators are not compared
    assert compare_rpm("0:1.0-1", "1.0-1") == 0


RPM_SAMPLES = [
    "1.0",
    "2.0.1",
    "1.0a",
    "1.0~rc1",
    "1.0^git1",
    "1.0.1",
    "005",
    "5",
    "a",
    "1.0.aa",
    "1.0.a",
    "1..0",
    "1.0^",
    "1.0~",
    "el9",
    "el9_2",
    "1.0_1",
    "1.0+1",
    "10",
    "1.A",
    "~",
    "^",
    "1.0~~",
    "1.0~^",
    "b2",
    "2b",
    "1.0.é",
    "1.0é1",
    "1.0.a^1",
    "1^~",
]


def test_rpm_segments_order_as_rpm_itself_does() -> None:
    """Every pair of the samples (version fields, no epoch or release) compared by the
    installed rpm's own rpm.vercmp (through its Lua interpreter) and by ecrd."""
    if shutil.which("rpm") is None:
        pytest.fail("rpm is not installed (scripts/install-test-tools installs it)")
    pairs = list(itertools.product(RPM_SAMPLES, RPM_SAMPLES))
    script = " ".join(f'print(rpm.vercmp("{a}", "{b}") .. " ")' for a, b in pairs)
    done = subprocess.run(
        ["rpm", "--eval", f"%{{lua: {script}}}"], capture_output=True, text=True, timeout=60
    )
    answers = [int(word) for word in done.stdout.split()]
    assert len(answers) == len(pairs), done.stderr
    differing = [
        (a, b, rpm_says)
        for (a, b), rpm_says in zip(pairs, answers, strict=True)
        if compare_rpm(a, b) != rpm_says
    ]
    assert differing == []


def test_go_modules_order_as_semver_without_the_v() -> None:
    go = comparer("Go")
    assert go is not None
    assert go("v0.7.0", "0.17.0") < 0
    assert go("v1.2.0", "1.2.0") == 0
    assert go("v0.0.0-20230101000000-abcdef123456", "0.0.0") < 0  # a pseudo-version
