"""Download CoOp's 15 benchmarks and lay them out exactly as CoOp's DATASETS.md does.

    python -m datasets.download oxford_pets eurosat --root $DATA
    python -m datasets.download all --root $DATA --keep-archives
    python -m datasets.download --list --root $DATA           # every dataset and its state on disk
    python -m datasets.download --check dtd --root $DATA      # layout check only, no network

For each item of a dataset's source table (`datasets/sources.py`) that is not already on disk:
1. obtain the file: one already in `<root>/_downloads/<folder>/` (kept, or put there by hand) is
   used first; otherwise it is downloaded over HTTP (tqdm progress bar; the bytes go to
   `<file>.part` and a retry or a rerun continues it with an HTTP Range request) or from Google
   Drive through gdown, trying the item's mirrors in order;
2. verify it: the published MD5 / SHA-256 when one is known, otherwise a content check (a valid
   archive, a valid split JSON, 1000 ImageNet class names, not an HTML error page). A download
   that fails is deleted and never unpacked;
3. unpack an archive into a hidden temporary folder inside the dataset folder, arrange the wanted
   entries there exactly as they will lie in the dataset folder, check that every symbolic link
   among them resolves inside the dataset folder, then rename them into place. A rename is atomic,
   so an interrupted run never leaves a half-extracted folder where the loaders look, and the
   temporary folder is always removed. Entries already present are kept, never overwritten. An
   archive that is refused (corrupt, unsafe, or without the expected entries) installs nothing; a
   download of this run is then deleted, a file the user put in `_downloads` is kept;
4. check the layout (`datasets/layout.py`) and list exactly what is still missing, including
   images the split file lists but the disk lacks, with the manual steps where no automatic
   source exists (ImageNet, Stanford Cars images).
Exit status: 0 when every requested dataset is complete, 1 otherwise, 2 for a bad command line.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from tqdm import tqdm

from .layout import LAYOUTS, Layout, UnknownDatasetError, find_layout, is_present, listed_but_absent
from .sources import SOURCES, Item, Mirror, Source

DOWNLOADS = "_downloads"  # <root>/_downloads/<dataset folder>/ holds archives and partial files
_CHUNK = 1 << 20
_USER_AGENT = "prompt-learning-dataset-tool/1.0 (python-urllib)"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class DownloadError(RuntimeError):
    """One step of fetching a file failed; the message says what happened."""


class ChecksumError(DownloadError):
    """A file is not the expected one (checksum or content check failed)."""


class ArchiveError(ChecksumError):
    """An archive that cannot be installed as it is: corrupt, unsafe (a member or link that would land or
    resolve outside the dataset folder) or without the expected entries."""


class DiskError(DownloadError):
    """The file is fine but could not be unpacked on this disk (full, read-only, permissions)."""


class _Truncated(OSError):
    """The connection ended before the announced number of bytes arrived (retried)."""


# --------------------------------------------------------------------------- HTTP with resume

def http_download(url: str, dest: Path, *, quiet: bool = False, retries: int = 3,
                  timeout: float = 60.0, backoff_s: float = 2.0) -> None:
    """Download `url` into `dest`; the file is complete when this returns.

    An existing `dest` is treated as a partial download and continued with `Range: bytes=N-`
    (a server that ignores Range sends everything and the file is rewritten from the start).
    Dropped connections, timeouts, 429 and 5xx answers are retried `retries` times, each retry
    continuing from the bytes on disk; on failure the partial file stays for the next run.
    """
    for attempt in range(retries + 1):
        try:
            _transfer(url, dest, quiet=quiet, timeout=timeout)
            return
        except urllib.error.HTTPError as err:
            if (err.code < 500 and err.code != 429) or attempt == retries:
                raise DownloadError(f"{url} answered HTTP {err.code} ({err.reason}).") from err
        except (OSError, http.client.HTTPException) as err:
            if attempt == retries:
                have = dest.stat().st_size if dest.exists() else 0
                if not have:
                    raise DownloadError(f"could not download {url} ({err}).") from err
                raise DownloadError(
                    f"downloading {url} stopped after {have:,} bytes ({err}). "
                    f"The partial file {dest} is kept: rerun the same command to resume."
                ) from err
        if not quiet:
            print(f"  connection problem, retry {attempt + 1}/{retries} ...", file=sys.stderr)
        time.sleep(backoff_s * (attempt + 1))


def _transfer(url: str, dest: Path, *, quiet: bool, timeout: float) -> None:
    have = dest.stat().st_size if dest.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # asked for bytes past the end: maybe already complete
            if _content_range(err.headers.get("Content-Range", ""))[1] == have:
                return
            dest.unlink()
            return _transfer(url, dest, quiet=quiet, timeout=timeout)
        raise
    with response:
        start, total = _content_range(response.headers.get("Content-Range", ""))
        if response.status == 206 and not (have and start == have):
            dest.unlink(missing_ok=True)
            raise _Truncated(f"the server sent an unexpected byte range ({start}); restarting from zero")
        if response.status != 206:  # a full answer, also when the server ignored the Range header
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
        _check_free_space(dest.parent, (total - have) if total else 0)
        name = dest.name.removesuffix(".part")
        with open(dest, "ab" if have else "wb") as out, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
            desc=name, disable=quiet, leave=False,
        ) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    size = dest.stat().st_size
    if total is not None and size != total:
        raise _Truncated(f"received {size:,} of {total:,} bytes")


def _content_range(header: str) -> tuple[int | None, int | None]:
    """(first byte, total size) from "bytes 100-199/1000" or "bytes */1000"; None where absent."""
    match = re.match(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", header.strip())
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DownloadError(
            f"{needed / 1e9:.1f} GB still to download but only {free / 1e9:.1f} GB free in {folder}. "
            "Free some space or choose another --root."
        )


# --------------------------------------------------------------------------- Google Drive

def gdrive_download(file_id: str, dest: Path, *, quiet: bool = False) -> None:
    """Download a Google Drive file into `dest` with gdown (which resumes its own partial files)."""
    import gdown  # only Drive downloads need it

    try:
        result = gdown.download(id=file_id, output=str(dest), quiet=quiet, resume=True)
    except Exception as err:  # gdown raises many types: quota, permission, network, HTML page
        raise DownloadError(f"Google Drive download failed ({type(err).__name__}: {err}).") from err
    if result is None or not dest.is_file():
        raise DownloadError("Google Drive download failed (gdown returned no file).")


class _Fetch(Protocol):
    def __call__(self, source: str, dest: Path, *, quiet: bool) -> None: ...


@dataclass(frozen=True)
class Downloaders:
    """How bytes are fetched; tests inject local stand-ins (no network, no gdown)."""

    http: _Fetch = http_download
    gdrive: _Fetch = gdrive_download


# --------------------------------------------------------------------------- verification

def file_digest(path: Path, algorithm: str, *, quiet: bool = True) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     desc=f"{algorithm} {path.name}", disable=quiet, leave=False) as bar:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(path: Path, mirror: Mirror, *, quiet: bool = True) -> str:
    """Check `path` against the mirror's published checksum, or its content when none is known.
    Returns what was checked; raises `ChecksumError` when the file is not the expected one."""
    algorithm, expected = ("sha256", mirror.sha256) if mirror.sha256 else ("md5", mirror.md5)
    if not expected:
        check_content(path, mirror.file)
        return "content checked (no published checksum)"
    actual = file_digest(path, algorithm, quiet=quiet)
    if actual != expected:
        raise ChecksumError(f"{mirror.file}: {algorithm} is {actual}, expected {expected}.")
    return f"{algorithm} verified"


def check_content(path: Path, name: str) -> None:
    """Catch the usual wrong downloads of files that have no published checksum."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise ChecksumError(
            f"{name} is a web page, not the file: the host answered with HTML "
            "(download quota exceeded, a login page, or the file moved)."
        )
    if name.endswith(".zip") and not zipfile.is_zipfile(path):
        raise ChecksumError(f"{name} is not a valid zip archive.")
    if name.endswith(_TAR_SUFFIXES) and not tarfile.is_tarfile(path):
        raise ChecksumError(f"{name} is not a valid tar archive.")
    if name.endswith(".json"):
        data = _read_json(path, name)
        if name.startswith("split_zhou_"):
            _check_split(data, name)
    if name == "classnames.txt":
        _check_classnames(path)


def _read_json(path: Path, name: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ChecksumError(f"{name} is not valid JSON ({err}).") from err


def _check_split(split: object, name: str) -> None:
    """CoOp's split format: {"train"|"val"|"test": [[relative_path, label, classname], ...]}."""
    parts = ("train", "val", "test")
    if not isinstance(split, dict) or not all(isinstance(split.get(p), list) and split[p] for p in parts):
        raise ChecksumError(f"{name} is not a CoOp split file: expected non-empty 'train', 'val', 'test' lists.")
    for part in parts:
        for entry in split[part]:
            if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                    and isinstance(entry[1], int) and isinstance(entry[2], str)):
                raise ChecksumError(f"{name}: {part} entry {entry!r} is not [relative_path, label, classname].")


def _check_classnames(path: Path) -> None:
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    bad = [line for line in lines if not re.match(r"n\d{8}\s+\S", line)]
    if len(lines) != 1000 or bad:
        raise ChecksumError(
            f"classnames.txt should hold 1000 lines 'n01440764 tench'; it has {len(lines)} lines"
            + (f", e.g. {bad[0]!r}." if bad else ".")
        )


# --------------------------------------------------------------------------- unpack and place

def is_archive(name: str) -> bool:
    return name.endswith(".zip") or name.endswith(_TAR_SUFFIXES)


def extract(archive: Path, into: Path, *, quiet: bool = True) -> None:
    """Unpack a zip or tar archive into `into`. Tar members that would land outside `into` (absolute
    paths, "..", hard or symbolic links pointing out, devices) are refused by tarfile's "data" filter
    (raised as `ArchiveError`); zip paths are sanitised and zipfile never creates links. Errors of the
    disk (full, read-only) are `DiskError`s: the archive itself is not at fault."""
    into.mkdir(parents=True, exist_ok=True)
    progress = dict(desc=f"unpack {archive.name}", unit="file", disable=quiet, leave=False)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in tqdm(zf.infolist(), **progress):
                    zf.extract(member, into)
        else:
            with tarfile.open(archive, "r:*") as tf:
                for member in tqdm(tf, **progress):
                    tf.extract(member, into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ArchiveError(f"cannot unpack {archive.name}: {err}.") from err
    except OSError as err:
        raise DiskError(f"cannot unpack {archive.name} into {into.parent}: {err}. The archive is kept in "
                        f"{archive.parent}: fix the cause (disk space, permissions), then rerun.") from err


def _locate(content: Path, rel: str, archive_name: str) -> Path:
    """`content/rel`, also accepted inside a single wrapping top-level folder (some archives add one)."""
    if (content / rel).exists():
        return content / rel
    top = [entry for entry in content.iterdir() if entry.name != "__MACOSX"]
    if len(top) == 1 and top[0].is_dir() and (top[0] / rel).exists():
        return top[0] / rel
    listing = ", ".join(sorted(entry.name for entry in top)[:10]) or "nothing"
    raise ArchiveError(
        f"{archive_name} has no '{rel}' (its top level holds: {listing}); the host may have "
        "changed the archive."
    )


def _resolve_moves(content: Path, moves: tuple[tuple[str, str], ...], archive_name: str) -> list[tuple[Path, str]]:
    """(source path, dataset-relative destination) for every move; "dir/*" expands to dir's entries."""
    pairs = []
    for src, dst in moves:
        if src.endswith("/*"):
            folder = _locate(content, src[:-2], archive_name)
            pairs += [(child, os.path.join(dst, child.name)) for child in sorted(folder.iterdir())]
        else:
            pairs.append((_locate(content, src, archive_name), dst))
    return pairs


def install_archive(archive: Path, mirror: Mirror, dataset_dir: Path, *, quiet: bool = True) -> list[str]:
    """Unpack `archive` into a temporary folder inside `dataset_dir`, arrange each of `mirror.moves`
    in `<staging>/.placed/` exactly as it will lie in `dataset_dir`, check its links
    (`check_links`), then rename each into place. Every source is located and every link checked
    before anything is moved, so a wrong or unsafe archive places nothing. Returns the
    dataset-relative paths placed; present ones are kept."""
    staging = dataset_dir / f".unpack-{mirror.file}"
    shutil.rmtree(staging, ignore_errors=True)  # left behind by a killed run
    try:
        extract(archive, staging, quiet=quiet)
        content = staging
        if mirror.inner:
            content = staging / ".inner-unpacked"
            extract(_locate(staging, mirror.inner, archive.name), content, quiet=quiet)
        mirrored = staging / ".placed"
        wanted = []
        for src, rel in _resolve_moves(content, mirror.moves, archive.name):
            if is_present(str(dataset_dir / rel) + ("/" if src.is_dir() else "")):
                continue
            (mirrored / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, mirrored / rel)
            wanted.append(rel)
        check_links(mirrored, wanted, archive.name)
        for rel in wanted:
            (dataset_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(mirrored / rel, dataset_dir / rel)
        return wanted
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_links(mirrored: Path, rels: list[str], archive_name: str) -> None:
    """Refuse (`ArchiveError`) any symbolic link under `mirrored/<rel>` that resolves outside `mirrored`.

    `mirrored` holds the entries at the same relative paths they will have in the dataset folder, so a
    relative link resolves here exactly as it will there: one that stays inside the temporary folder
    but would point outside the dataset folder once moved (e.g. `images/x -> ../../y`) is caught.
    Chains of links are followed (`os.path.realpath`). Hard links need no check: tarfile's "data"
    filter only makes them to files inside the temporary folder, and a hard link is a file, not a path.
    """
    inside = os.path.realpath(mirrored)
    for rel in rels:
        top = mirrored / rel
        links = [top] if top.is_symlink() else []
        if top.is_dir() and not top.is_symlink():
            for folder, dirs, files in os.walk(top):
                links += [Path(folder, name) for name in dirs + files if Path(folder, name).is_symlink()]
        for link in links:
            resolved = os.path.realpath(link)
            if os.path.commonpath([inside, resolved]) != inside:
                shown = link.relative_to(mirrored).as_posix()
                raise ArchiveError(
                    f"{archive_name} is unsafe: its link '{shown}' -> '{os.readlink(link)}' would point "
                    "outside the dataset folder once installed."
                )


def place_file(src: Path, dst: Path, *, copy: bool = False) -> None:
    """Move (or copy) a file to `dst` atomically: `dst` is either absent or complete."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.replace(src, dst)
            return
        except OSError:  # another filesystem (e.g. a symlinked dataset folder): copy instead
            pass
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    if not copy:
        src.unlink()


# --------------------------------------------------------------------------- one dataset

@dataclass
class Outcome:
    """The state of one dataset on disk, and what `prepare` could not do."""

    name: str
    folder: Path
    missing: list[str]  # required paths still absent (full paths; folders end with "/")
    missing_optional: list[str]  # only needed to rebuild a missing split file
    split_missing: list[str]  # images listed in the split file but absent (checked once nothing is missing)
    split_error: str = ""  # the split file exists but cannot be read
    errors: list[str] = field(default_factory=list)
    manual: str = ""  # instructions for the steps that need a person; "" when none are needed

    @property
    def complete(self) -> bool:
        return not (self.missing or self.split_missing or self.split_error)


def layout_state(root: Path, layout: Layout) -> Outcome:
    """Layout check of one dataset: required, optional and split-listed files."""
    folder = Path(root) / layout.folder
    missing = _missing(folder, layout.required)
    split_missing, split_error = [], ""
    if not missing:
        try:
            split_missing = listed_but_absent(root, layout)
        except ValueError as err:
            split_error = str(err)
    return Outcome(layout.name, folder, missing, _missing(folder, layout.optional), split_missing, split_error)


def prepare(source: Source, layout: Layout, root: Path, *, downloaders: Downloaders = Downloaders(),
            keep_archives: bool = False, quiet: bool = False,
            log: Callable[[str], None] = print) -> Outcome:
    """Fetch, verify and unpack every missing item of one dataset, then check its layout."""
    root = Path(root)
    dataset_dir = root / layout.folder
    downloads = root / DOWNLOADS / layout.folder
    errors: list[str] = []
    needs_person = False
    log(f"== {layout.name} -> {dataset_dir}")
    for item in source.items:
        listed = ", ".join(item.provides)
        if all(is_present(os.path.join(dataset_dir, p)) for p in item.provides):
            log(f"  present   {listed}")
            continue
        dataset_dir.mkdir(parents=True, exist_ok=True)
        downloads.mkdir(parents=True, exist_ok=True)
        if item.copy_from and is_present(str(root / item.copy_from)):
            place_file(root / item.copy_from, dataset_dir / item.provides[0], copy=True)
            log(f"  copied    {item.copy_from} -> {layout.folder}/{item.provides[0]}")
            continue
        done, item_errors = _fetch_item(item, dataset_dir, downloads, downloaders, keep_archives, quiet, log)
        errors += item_errors
        if not done:
            needs_person = True
            log(f"  MISSING   {listed}")
    _remove_empty(downloads, root / DOWNLOADS, dataset_dir)
    outcome = layout_state(root, layout)
    outcome.errors = errors
    if needs_person and source.manual:
        outcome.manual = source.manual.format(root=root, folder=dataset_dir, downloads=downloads)
    return outcome


def _fetch_item(item: Item, dataset_dir: Path, downloads: Path, downloaders: Downloaders,
                keep_archives: bool, quiet: bool, log: Callable[[str], None]) -> tuple[bool, list[str]]:
    """Try the item's mirrors (files already on disk first). Returns (success, error messages)."""
    on_disk = [m for m in item.mirrors if (downloads / m.file).is_file()]
    remote = [m for m in item.mirrors if m not in on_disk and (m.url or m.gdrive_id)]
    errors = []
    for mirror in on_disk + remote:
        target = downloads / mirror.file
        try:
            if mirror in on_disk:
                log(f"  using     {target}")
                checked = verify(target, mirror, quiet=quiet)
            else:
                checked = _download(mirror, target, downloaders, quiet, log)
            log(f"  ok        {mirror.file}: {checked}")
            if mirror.note:
                log(f"  note      {mirror.note}")
            if mirror.moves:
                placed = _install_or_delete(target, mirror, dataset_dir, quiet, fresh=mirror not in on_disk)
                log(f"  unpacked  {', '.join(placed) or 'nothing new'}")
                if not keep_archives:
                    target.unlink()
            else:
                place_file(target, dataset_dir / item.provides[0])
                log(f"  placed    {item.provides[0]}")
        except DownloadError as err:
            message = _explain(err, mirror, target, fresh=mirror not in on_disk)
            log(f"  FAILED    {message}")
            errors.append(message)
            continue
        return True, errors
    return False, errors


def _install_or_delete(target: Path, mirror: Mirror, dataset_dir: Path, quiet: bool, *, fresh: bool) -> list[str]:
    """`install_archive`; an archive it refuses is deleted when this run downloaded it (a file the user
    supplied is theirs to inspect, so it stays)."""
    try:
        return install_archive(target, mirror, dataset_dir, quiet=quiet)
    except ArchiveError:
        if fresh:
            target.unlink(missing_ok=True)
        raise


def _download(mirror: Mirror, target: Path, downloaders: Downloaders, quiet: bool,
              log: Callable[[str], None]) -> str:
    """Fetch into `<target>.part`, verify it, then rename it to `target`; a bad file is deleted."""
    part = target.with_name(target.name + ".part")
    log(f"  download  {mirror.file} from {_link(mirror)}")
    if mirror.url:
        downloaders.http(mirror.url, part, quiet=quiet)
    else:
        downloaders.gdrive(mirror.gdrive_id, part, quiet=quiet)
    if not part.is_file():
        raise DownloadError(f"the download of {mirror.file} produced no file.")
    try:
        checked = verify(part, mirror, quiet=quiet)
    except ChecksumError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return checked


def _link(mirror: Mirror) -> str:
    return mirror.url or f"https://drive.google.com/file/d/{mirror.gdrive_id}/view"


def _explain(err: DownloadError, mirror: Mirror, target: Path, *, fresh: bool) -> str:
    """The error with advice that fits it: a bad file is not worth saving by hand from the same link."""
    if isinstance(err, ArchiveError):
        if fresh:
            return (f"{err} The download was deleted and nothing from it was installed. The file on the "
                    "host is not usable as it is: see DATASETS.md for other sources and the manual steps.")
        return (f"{err} Nothing from {target} was installed: delete or replace it (DATASETS.md lists the "
                "sources), then rerun.")
    if isinstance(err, ChecksumError):
        if fresh:
            return f"{err} The download was deleted and not unpacked."
        return f"{err} {target} was not unpacked: delete or replace it, then rerun."
    if (mirror.url or mirror.gdrive_id) and not isinstance(err, DiskError):
        return f"{mirror.file}: {err} By hand: save {_link(mirror)} as {target}, then rerun."
    return f"{mirror.file}: {err}"


def _missing(dataset_dir: Path, paths: tuple[str, ...]) -> list[str]:
    full = [os.path.join(dataset_dir, rel) for rel in paths]
    return [path for path in full if not is_present(path)]


def _remove_empty(*folders: Path) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------------------- command line

def resolve_names(names: list[str]) -> list[str]:
    """Config stems for the given names ("all" = every dataset); unknown names raise with a suggestion."""
    if any(name.lower() == "all" for name in names):
        return list(LAYOUTS)
    return list(dict.fromkeys(find_layout(name).name for name in names))


def _how(source: Source) -> str:
    """"partly manual" when some item has no download at all; Drive is "needed" when some item
    can come only from Google Drive (no HTTP mirror, no local copy)."""
    manual = any(not any(m.url or m.gdrive_id for m in item.mirrors) for item in source.items)
    drive = any(not item.copy_from and item.mirrors and not any(m.url for m in item.mirrors)
                and any(m.gdrive_id for m in item.mirrors) for item in source.items)
    return "partly manual" if manual else ("automatic (Google Drive)" if drive else "automatic")


def _state(root: Path, layout: Layout) -> str:
    if not (root / layout.folder).is_dir():
        return "absent"
    missing = _missing(root / layout.folder, layout.required)
    return f"missing {len(missing)} of {len(layout.required)}" if missing else "present"


def list_datasets(root: Path) -> str:
    rows = [("name", "folder", "state", "how")] + [
        (name, layout.folder + "/", _state(root, layout), _how(SOURCES[name])) for name, layout in LAYOUTS.items()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3] for row in rows]
    return (f"Data root: {root}\n" + "\n".join(lines)
            + "\n('present': the required folders and files exist; --check also verifies every image the split lists)")


def _report(outcome: Outcome) -> list[str]:
    if outcome.complete:
        lines = [f"{outcome.name}: complete ({outcome.folder})"]
    else:
        lines = [f"{outcome.name}: INCOMPLETE, missing:"] + [f"    {path}" for path in outcome.missing]
    if outcome.split_missing:
        shown = outcome.split_missing[:5]
        lines.append(f"  {len(outcome.split_missing):,} images listed in the split file do not exist, e.g.:")
        lines += [f"    {path}" for path in shown]
    if outcome.split_error:
        lines.append(f"  {outcome.split_error}")
    if outcome.missing_optional:
        lines.append("  not present (only needed to rebuild a missing split file): "
                     + ", ".join(os.path.basename(p.rstrip("/")) for p in outcome.missing_optional))
    if outcome.manual:
        lines += ["  Manual steps:"] + [f"    {line}" for line in outcome.manual.splitlines()]
    return lines


def check(root: Path, names: list[str]) -> tuple[bool, str]:
    """Layout check only: (all complete, report)."""
    lines, ok = [], True
    for name in names:
        outcome = layout_state(root, LAYOUTS[name])
        ok &= outcome.complete
        lines += _report(outcome)
        if not outcome.complete:
            lines.append(f"  fix: python -m datasets.download {name} --root {root}")
    return ok, "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.download",
        description="Download and prepare CoOp's benchmarks in CoOp's folder layout (see DATASETS.md).",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"datasets to fetch, or 'all': {', '.join(LAYOUTS)}")
    parser.add_argument("--root", required=True, help="data root (CoOp's $DATA); each dataset gets a sub-folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--list", action="store_true", help="list every dataset and its state on disk")
    mode.add_argument("--check", action="store_true",
                      help="check the layout of the named datasets (all if none named); no download")
    parser.add_argument("--keep-archives", action="store_true",
                        help=f"keep downloaded archives in ROOT/{DOWNLOADS}/ instead of deleting them after unpacking")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None, downloaders: Downloaders = Downloaders()) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    root = Path(args.root).expanduser().absolute()
    try:
        names = resolve_names(args.names)
    except UnknownDatasetError as err:
        parser.error(str(err))
    if args.list:
        print(list_datasets(root))
        return 0
    if args.check:
        ok, report = check(root, names or list(LAYOUTS))
        print(report)
        return 0 if ok else 1
    if not names:
        parser.error("name the datasets to fetch (e.g. 'oxford_pets eurosat') or 'all'; --list shows them")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        parser.error(f"cannot create --root {root} ({err.strerror or err}); choose a writable folder")
    outcomes = []
    try:
        for name in names:
            outcomes.append(prepare(SOURCES[name], LAYOUTS[name], root, downloaders=downloaders,
                                    keep_archives=args.keep_archives, quiet=args.quiet))
    except KeyboardInterrupt:
        print(f"\nInterrupted. Partial downloads are kept in {root / DOWNLOADS} and resume on the next run.",
              file=sys.stderr)
        return 130
    print("\nSummary")
    for outcome in outcomes:
        print("\n".join(_report(outcome)))
    return 0 if all(outcome.complete for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
