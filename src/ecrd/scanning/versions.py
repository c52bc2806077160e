"""Version order per ecosystem, as OSV's affected ranges are read in each (OSV: "the ecosystem's
own version ordering").

    Debian   dpkg's algorithm (epoch, upstream, revision; `~` sorts before anything)
    Alpine   apk's (numeric parts, letter, `_alpha` < `_beta` < `_pre` < `_rc` < none <
             `_cvs` < `_svn` < `_git` < `_hg` < `_p`, then `-rN`)
    PyPI     PEP 440, through `packaging`
    npm, Go  SemVer 2.0.0 (major.minor.patch, a pre-release sorting before its release; Go's
             `v` prefix ignored)
    RPM      rpm's rpmvercmp on epoch, version and release (`~` sorts before anything, `^`
             after the version it extends)
"""

from __future__ import annotations

import re
from collections.abc import Callable

from packaging.version import InvalidVersion, Version

Compare = Callable[[str, str], int]


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# Debian


def _dpkg_order(character: str) -> int:
    if character == "~":
        return -1
    if character.isdigit():
        return 0
    if character.isalpha():
        return ord(character)
    return ord(character) + 256


def _dpkg_part(left: str, right: str) -> int:
    i = j = 0
    while i < len(left) or j < len(right):
        first_difference = 0
        while (i < len(left) and not left[i].isdigit()) or (
            j < len(right) and not right[j].isdigit()
        ):
            a = _dpkg_order(left[i]) if i < len(left) else 0
            b = _dpkg_order(right[j]) if j < len(right) else 0
            if a != b:
                return _sign(a - b)
            i += 1
            j += 1
        while i < len(left) and left[i] == "0":
            i += 1
        while j < len(right) and right[j] == "0":
            j += 1
        while i < len(left) and left[i].isdigit() and j < len(right) and right[j].isdigit():
            if not first_difference:
                first_difference = ord(left[i]) - ord(right[j])
            i += 1
            j += 1
        if i < len(left) and left[i].isdigit():
            return 1
        if j < len(right) and right[j].isdigit():
            return -1
        if first_difference:
            return _sign(first_difference)
    return 0


def _dpkg_split(version: str) -> tuple[int, str, str]:
    epoch = 0
    if ":" in version:
        head, version = version.split(":", 1)
        epoch = int(head) if head.isdigit() else 0
    upstream, _, revision = version.rpartition("-") if "-" in version else (version, "", "")
    return epoch, upstream, revision


def compare_debian(left: str, right: str) -> int:
    a, b = _dpkg_split(left), _dpkg_split(right)
    if a[0] != b[0]:
        return _sign(a[0] - b[0])
    return _dpkg_part(a[1], b[1]) or _dpkg_part(a[2], b[2])


# Alpine

_APK_SUFFIXES = {"alpha": -4, "beta": -3, "pre": -2, "rc": -1, "cvs": 1, "svn": 2, "git": 3,
                 "hg": 4, "p": 5}  # fmt: skip
_APK = re.compile(r"^(?P<numbers>\d+(?:\.\d+)*)(?P<letter>[a-z]?)(?P<suffixes>(?:_[a-z]+\d*)*)"
                  r"(?:-r(?P<release>\d+))?$")  # fmt: skip


def _apk_key(version: str) -> tuple[object, ...]:
    match = _APK.match(version)
    if match is None:
        return ((), 0, (), 0, version)
    numbers = tuple(int(part) for part in match["numbers"].split("."))
    letter = ord(match["letter"]) if match["letter"] else 0
    suffixes = []
    for suffix in re.findall(r"_([a-z]+)(\d*)", match["suffixes"]):
        suffixes.append((_APK_SUFFIXES.get(suffix[0], 0), int(suffix[1] or 0)))
    # No suffix sorts between the pre-release ones and the post-release ones.
    suffixes.append((0, 0))
    return (numbers, letter, tuple(suffixes), int(match["release"] or 0), "")


def compare_alpine(left: str, right: str) -> int:
    a, b = _apk_key(left), _apk_key(right)
    return (a > b) - (a < b)


# PyPI


def compare_pypi(left: str, right: str) -> int:
    try:
        a, b = Version(left), Version(right)
    except InvalidVersion:
        return (left > right) - (left < right)
    return (a > b) - (a < b)


# npm

_SEMVER = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def _semver_key(version: str) -> tuple[object, ...]:
    match = _SEMVER.match(version.strip())
    if match is None:
        return (0, 0, 0, 0, ((1, 0, version),))
    major, minor, patch = (int(match[n]) for n in (1, 2, 3))
    if match[4] is None:
        return (major, minor, patch, 1, ())
    # Identifiers: numbers sort numerically and before text.
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in match[4].split("."))
    return (major, minor, patch, 0, parts)


def compare_semver(left: str, right: str) -> int:
    a, b = _semver_key(left), _semver_key(right)
    return (a > b) - (a < b)


# RPM


def _rpm_alnum(character: str) -> bool:
    # rpm's risalnum: ASCII letters and digits only; anything else separates.
    return character.isascii() and character.isalnum()


def _rpm_segments(left: str, right: str) -> int:
    """rpmvercmp: alternating runs of digits and letters, separators skipped."""
    if left == right:
        return 0
    i = j = 0
    while i < len(left) or j < len(right):
        while i < len(left) and not _rpm_alnum(left[i]) and left[i] not in "~^":
            i += 1
        while j < len(right) and not _rpm_alnum(right[j]) and right[j] not in "~^":
            j += 1
        a = left[i] if i < len(left) else ""
        b = right[j] if j < len(right) else ""
        if a == "~" or b == "~":  # a tilde sorts before everything, the end included
            if a != "~":
                return 1
            if b != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if a == "^" or b == "^":  # a caret sorts after the end, before anything else
            if not a:
                return -1
            if not b:
                return 1
            if a != "^":
                return 1
            if b != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not a or not b:
            break
        numeric = a.isdigit()
        kind = str.isdigit if numeric else str.isalpha
        start_i, start_j = i, j
        while i < len(left) and left[i].isascii() and kind(left[i]):
            i += 1
        while j < len(right) and right[j].isascii() and kind(right[j]):
            j += 1
        one, two = left[start_i:i], right[start_j:j]
        if not two:  # a number is newer than letters
            return 1 if numeric else -1
        if numeric:
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return _sign(len(one) - len(two))
        if one != two:
            return 1 if one > two else -1
    if i >= len(left) and j >= len(right):
        return 0
    return -1 if i >= len(left) else 1


def _rpm_split(version: str) -> tuple[int, str, str]:
    epoch = 0
    head, colon, rest = version.partition(":")
    if colon and head.isdigit():
        epoch, version = int(head), rest
    upstream, dash, release = version.rpartition("-")
    return (epoch, upstream, release) if dash else (epoch, version, "")


def compare_rpm(left: str, right: str) -> int:
    a, b = _rpm_split(left), _rpm_split(right)
    if a[0] != b[0]:
        return _sign(a[0] - b[0])
    order = _rpm_segments(a[1], b[1])
    if order or not a[2] or not b[2]:
        return order
    return _rpm_segments(a[2], b[2])


def comparer(ecosystem: str) -> Compare | None:
    """The version order of an OSV ecosystem (`Debian:12` is Debian's); None for one ecrd
    cannot order."""
    family = ecosystem.split(":", 1)[0]
    orders = {
        "Debian": compare_debian,
        "Ubuntu": compare_debian,
        "Alpine": compare_alpine,
        "PyPI": compare_pypi,
        "npm": compare_semver,
        "Go": compare_semver,
        "Red Hat": compare_rpm,
        "AlmaLinux": compare_rpm,
        "Rocky Linux": compare_rpm,
        "openSUSE": compare_rpm,
        "SUSE": compare_rpm,
        "Mageia": compare_rpm,
        "Fedora": compare_rpm,
        "Amazon Linux": compare_rpm,
        "Oracle Linux": compare_rpm,
        "CentOS": compare_rpm,
    }
    return orders.get(family)
