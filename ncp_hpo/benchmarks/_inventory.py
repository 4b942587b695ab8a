"""What benchmark data this machine has: one :class:`DataStatus` per resource (the rows of
``ncp-hpo data list``), checked against the pinned checksums without loading the tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ncp_hpo.benchmarks._registry import RESOURCES, get_resource
from ncp_hpo.benchmarks._safe_pickle import sha256_hex
from ncp_hpo.benchmarks._store import find_setting, read_meta
from ncp_hpo.exceptions import DataError

__all__ = ["DataStatus", "data_status"]


@dataclass(frozen=True)
class DataStatus:
    """Availability of one resource (a setting or the search list).

    Attributes:
        name: the resource name (``"seg"``, ``"nas-bench-201"``, ``"search_list"`` ...).
        where: ``"not available"`` or ``"<origin> (<path>)"``.
        rows: rows of the file (``"-"`` when unknown or unreadable).
        check: the checksum verdict (``verified``, ``MISMATCH``, ``STALE ...``, ``pinned`` ...).
    """

    name: str
    where: str
    rows: str
    check: str


def data_status(
    names: list[str] | None = None, data_dir: str | Path | None = None
) -> list[DataStatus]:
    """The status of ``names`` (default: every resource) in the search order of
    :func:`~ncp_hpo.benchmarks.find_setting` (``data_dir`` first). Reads converted caches'
    headers and hashes raw files; tables are not loaded.

    Raises:
        UnknownSettingError: a name is not a known resource.
    """
    return [_status(name, data_dir) for name in (names or list(RESOURCES))]


def _status(name: str, data_dir: str | Path | None) -> DataStatus:
    res = get_resource(name)
    expected_rows = str(getattr(res, "rows", "") or "")
    loc = find_setting(name, data_dir)
    if loc is None:
        pin = "pinned" if res.sha256 else "none known (needs --allow-unverified)"
        return DataStatus(name, "not available", "-", pin)
    where = f"{loc.origin} ({loc.path})"
    if loc.format == "npz":
        try:
            meta = read_meta(loc.path)
        except DataError:
            return DataStatus(name, where, "-", "BROKEN cache entry (re-fetch with --force)")
        if meta.get("verified") and meta.get("source_sha256") == res.sha256:
            check = "verified"
        elif res.sha256 is None:
            check = "unverified (no pinned checksum)"
        else:
            check = "STALE (converted from other bytes; re-fetch)"
        return DataStatus(name, where, str(meta.get("rows", "?")), check)
    digest = sha256_hex(Path(loc.path).read_bytes())
    if res.sha256 is None:
        check = f"unverified (sha256 {digest[:12]}...)"
    else:
        check = "verified" if digest == res.sha256 else "MISMATCH"
    if loc.format == "text":
        expected_rows = str(len(Path(loc.path).read_text().splitlines()))
    return DataStatus(name, where, expected_rows or "?", check)
