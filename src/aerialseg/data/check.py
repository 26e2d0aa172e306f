"""Verify a dataset download before use: ``aerialseg data check vaihingen --root DIR``.

For every tile of the chosen split the checker looks for each file the reader needs (in the
same places the reader looks), reads the raster headers, checks that the TIFF data lies
inside the file and that JPEGs and PNGs decode (a truncated download or extraction fails
here), that the image, DSM, nDSM and label rasters have the same size, that height rasters
hold no NaN or infinite values, that the label files hold only palette colours (listing
unknown colours with their pixel counts), that an eroded label file agrees with the full
one, and that an orthophoto is not a label image in disguise. It counts the tiles found
against the tiles expected and says why a set is not usable. The report says what is fine,
what is missing or wrong, what to do, where to get the data and the expected layout.

ISPRS publishes no checksums for its archives, so none are checked for Vaihingen and
Potsdam; the synthetic dataset is checked against the SHA-256 sums of its manifest.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from aerialseg.data import isprs
from aerialseg.data.classes import (
    DUBAI,
    IGNORE_INDEX,
    ISPRS,
    LOVEDA,
    ClassTable,
    LabelColourError,
    LabelValueError,
)
from aerialseg.data.io import count_nonfinite, read_image, tiff_problem

OK, WARN, ERROR, HINT = "ok", "warn", "error", "hint"
_MAX_ROWS = 60  # larger sets list only the tiles with problems
_PALETTE_LIKE = 0.995  # share of palette colours above which an "orthophoto" is a label map
_ERODED_DISAGREE = 0.01  # share of eroded-file pixels allowed to differ from the full labels


@dataclass
class Finding:
    """One line of the report."""

    level: str
    where: str
    message: str


@dataclass
class TileResult:
    """What the checker found for one tile (area)."""

    name: str
    split: str
    status: str  # "ok" | "absent" (no orthophoto: the reader skips it) | "broken"
    size: tuple[int, int] | None = None
    files: list[str] = field(default_factory=list)
    class_counts: np.ndarray | None = None


@dataclass
class CheckReport:
    """Outcome of :func:`check_dataset`; ``text()`` renders it."""

    dataset: str
    root: Path
    split_name: str | None
    split_source: str
    findings: list[Finding]
    tiles: list[TileResult]
    layout: str
    source: str
    checksums: str
    classes: ClassTable = ISPRS
    published: tuple[int, int] | None = None
    """(tiles present, tiles published) for sets whose split covers what is present (Dubai);
    the set is complete only when all are present."""
    unit: str = "tiles"
    """What a row of the report is (Dubai: image ``parts`` of the tiles)."""

    @property
    def errors(self) -> list[Finding]:
        """Findings that make the dataset unusable."""
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        """Findings worth knowing that do not stop the reader."""
        return [f for f in self.findings if f.level == WARN]

    def count(self, split: str, status: str = OK) -> int:
        """Number of tiles of ``split`` with ``status``."""
        return sum(t.split == split and t.status == status for t in self.tiles)

    def total(self, split: str) -> int:
        """Number of tiles the split names."""
        return sum(t.split == split for t in self.tiles)

    @property
    def usable(self) -> bool:
        """The reader can load both splits: no errors and at least one good tile in each."""
        return not self.errors and all(self.count(s) > 0 for s in ("train", "val"))

    @property
    def complete(self) -> bool:
        """Usable, and every tile of the split is there (the papers' protocol)."""
        whole = self.published is None or self.published[0] >= self.published[1]
        return self.usable and whole and all(t.status == OK for t in self.tiles)

    def reasons(self) -> list[str]:
        """Why the set is not usable (empty when it is)."""
        if self.usable:
            return []
        out = [f.message for f in self.errors]
        for s in ("train", "val"):
            if not self.count(s) and not any(f"no usable {s}" in m or f"no {s}" in m
                                             for m in out):
                out.append(f"no usable {s} tile" + (
                    "" if self.total(s) else f": the {s} split has no tile here"))
        return out

    def exit_code(self, strict: bool = False) -> int:
        """0 if usable (and complete when ``strict``), else 1."""
        return 0 if (self.complete if strict else self.usable) else 1

    def text(self) -> str:
        """The human-readable report."""
        lines = [f"aerialseg data check: {self.dataset}", f"  root:      {self.root}"]
        if self.split_name:
            lines.append(f"  split:     {self.split_name} ({self.split_source})")
        elif self.split_source:
            lines.append(f"  split:     {self.split_source}")
        lines.append(f"  checksums: {self.checksums}")
        shown = self.tiles
        if len(self.tiles) > _MAX_ROWS:
            shown = [t for t in self.tiles if t.status == "broken"][:_MAX_ROWS // 2]
        if self.tiles and all(t.status == "absent" for t in self.tiles):
            lines += ["", f"  none of the {len(self.tiles)} tiles of the split was found"]
        elif self.tiles:
            lines.append("")
            if len(shown) < len(self.tiles):
                lines.append(f"  {len(self.tiles)} tiles; those with problems:"
                             if shown else f"  {len(self.tiles)} tiles, none with problems")
            width = max(len(t.name) for t in self.tiles)
            for t in shown:
                status = {OK: "OK", "absent": "ABSENT", "broken": "PROBLEM"}[t.status]
                size = f"{t.size[0]}x{t.size[1]} px" if t.size else ""
                what = {OK: ", ".join(t.files), "absent": f"(no {', '.join(t.files)})"}.get(
                    t.status, "")
                lines.append(f"  {t.split:5s} {t.name:{width}s}  {status:7s}  {size:13s} {what}"
                             .rstrip())
        shares = self._shares()
        if shares:
            lines += ["", "  class shares of the labelled pixels of the good tiles:", shares]
        for level, title in ((ERROR, "Problems (must be fixed)"), (WARN, "Warnings"),
                             (HINT, "What to do")):
            found = [f for f in self.findings if f.level == level]
            if found:
                lines += ["", f"{title}:"]
                lines += [textwrap.fill(f"- {f.where + ': ' if f.where else ''}{f.message}",
                                        width=100, initial_indent="  ",
                                        subsequent_indent="    ", break_on_hyphens=False,
                                        break_long_words=False) for f in found]
        lines.append("")
        counts = "; ".join(f"{s} {self.count(s)}/{self.total(s)} {self.unit} OK"
                           for s in ("train", "val") if self.total(s))
        if self.complete:
            verdict = "USABLE and complete"
        elif self.usable and self.published and all(t.status == OK for t in self.tiles):
            verdict = (f"usable, {self.published[0]} of {self.published[1]} published tiles "
                       "present")
        elif self.usable:
            verdict = ("USABLE, but incomplete: results are not comparable with the papers' "
                       "until the absent tiles are added")
        elif self.errors:
            verdict = f"NOT USABLE ({len(self.errors)} problem(s) above)"
        else:
            verdict = f"NOT USABLE: {'; '.join(self.reasons())}"
        if self.published and not (self.usable and not self.complete):
            verdict += (f" ({self.published[0]} of {self.published[1]} published tiles "
                        "present)")
        lines.append(f"Summary: {counts + ' -> ' if counts else ''}{verdict}.")
        if not self.complete:
            lines += ["", "Where to get it:",
                      textwrap.fill(self.source, width=100, initial_indent="  ",
                                    subsequent_indent="  ", break_on_hyphens=False,
                                    break_long_words=False),
                      "Expected layout:", self.layout]
        return "\n".join(lines)

    def _shares(self) -> str:
        lines = []
        for split in ("train", "val"):
            counts = [t.class_counts for t in self.tiles if t.status == OK
                      and t.split == split and t.class_counts is not None]
            if not counts:
                continue
            total = np.sum(counts, axis=0)
            share = total / max(int(total.sum()), 1)
            lines.append(f"    {split + ':':6s} " + ", ".join(
                f"{n} {100 * s:.1f} %" for n, s in zip(self.classes.names, share, strict=True)))
        return "\n".join(lines)


# ------------------------------------------------------------------------------- helpers

@dataclass
class _File:
    role: str
    path: Path
    kind: str  # "image" | "height" | "label" | "eroded"
    channels: int = 1
    required: bool = True
    alternatives: tuple[Path, ...] = ()


def _rel(root: Path, p: Path) -> str:
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def _probe(path: Path) -> tuple[tuple[int, int], int, str]:
    """(H, W), channels and dtype from the header; fails on a truncated TIFF or JPEG."""
    if path.suffix.lower() in (".tif", ".tiff"):
        problem = tiff_problem(path)
        if problem:
            raise OSError(problem)
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            palette = page.photometric == tifffile.PHOTOMETRIC.PALETTE
            return ((int(page.imagelength), int(page.imagewidth)),
                    3 if palette else int(page.samplesperpixel), str(page.dtype))
    with Image.open(path) as im:
        im.load()  # decodes everything: raises on a truncated file
        channels = 3 if im.mode in ("P", "PA") else len(im.getbands())  # palette: RGB
        return (im.height, im.width), channels, im.mode


def _codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb[..., :3].astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _match(codes: np.ndarray, colours: Sequence[tuple[int, int, int]]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Index of each pixel's colour in ``colours`` (-1: unknown) and the per-colour counts."""
    idx = np.full(codes.shape, -1, np.int8)
    for i, (r, g, b) in enumerate(colours):
        idx[codes == ((r << 16) | (g << 8) | b)] = i
    return idx, np.bincount(idx[idx >= 0].ravel(), minlength=len(colours))


def _unknown_listing(codes: np.ndarray, top: int = 6) -> str:
    vals, counts = np.unique(codes, return_counts=True)
    order = np.argsort(counts)[::-1][:top]
    more = f" and {len(vals) - top} more colours" if len(vals) > top else ""
    return ", ".join(f"#{int(vals[i]):06X} ({int(counts[i])} px)" for i in order) + more


def _palette_text(classes: ClassTable) -> str:
    return ", ".join(f"{n} #{r:02X}{g:02X}{b:02X}"
                     for n, (r, g, b) in zip(classes.names, classes.colours, strict=True))


# ---------------------------------------------------------------------------- tile check

def _check_tile(root: Path, name: str, split: str, files: list[_File], *, snap: bool,
                classes: ClassTable, findings: list[Finding], size_slack: int = 0
                ) -> TileResult:
    res = TileResult(name, split, OK)
    anchor = files[0]
    if not anchor.path.is_file():  # reported per split by the caller
        res.status = "absent"
        res.files = [_rel(root, anchor.path)]
        return res
    errors: list[str] = []
    warns: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}
    labels = None
    for f in files:
        if not f.path.is_file():
            alts = "".join(f" (or {_rel(root, a)})" for a in f.alternatives)
            if f.required:
                errors.append(f"missing {f.role}: {_rel(root, f.path)}{alts}")
            else:
                warns.append(f"no {f.role} ({_rel(root, f.path)}{alts}); the eroded protocol "
                             "falls back to our disk-3 erosion of the full ground truth "
                             "(about 99 % agreement with the official files)")
            continue
        try:
            size, channels, dtype = _probe(f.path)
        except Exception as exc:  # any read failure means the same to the user
            errors.append(f"cannot read {f.role} {_rel(root, f.path)}: {exc}. The file is "
                          "damaged or incomplete: download and extract it again")
            continue
        sizes[_rel(root, f.path)] = size
        if channels < f.channels:
            errors.append(f"{f.role} {_rel(root, f.path)} has {channels} band(s), expected "
                          f"{f.channels}: is it the right file?")
            continue
        res.files.append(f.role)
        if f.kind == "image":
            _check_not_labels(root, f, classes, errors)
        elif f.kind == "height":
            _check_finite(root, f, errors)
        elif f.kind == "label":
            labels = _check_labels(root, f, classes, snap, errors, warns, res)
        elif f.kind == "eroded_only":
            _check_labels(root, f, classes, snap, errors, warns, res, extra=(isprs.BLACK,))
            warns.append(f"only the eroded ground truth ({_rel(root, f.path)}): the reader "
                         "loads it (Scene.full_truth False), the eroded protocol is exact, "
                         "the full-ground-truth protocol is unavailable")
        elif f.kind == "eroded":
            _check_eroded(root, f, classes, snap, labels, errors, warns)
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{p} {s[0]}x{s[1]}" for p, s in sizes.items())
        hs, ws = zip(*sizes.values(), strict=True)
        if max(max(hs) - min(hs), max(ws) - min(ws)) <= size_slack:
            warns.append(f"files differ slightly in size: {listed} (the reader crops them to "
                         "the common part)")
        else:
            errors.append(f"files differ in size (H x W): {listed}. They must cover the same "
                          "tile at the same resolution (none resampled)")
    if sizes:
        res.size = min(sizes.values())
    findings += [Finding(ERROR, name, m) for m in errors]
    findings += [Finding(WARN, name, m) for m in warns]
    if errors:
        res.status = "broken"
    return res


def _check_not_labels(root: Path, f: _File, classes: ClassTable, errors: list[str]) -> None:
    try:
        window = isprs.read_raster(f.path, max_size=256)
    except Exception as exc:
        errors.append(f"cannot read {f.role} {_rel(root, f.path)}: {exc}")
        return
    if window.ndim == 3 and window.shape[-1] >= 3:
        idx, _ = _match(_codes(window), classes.colours)
        if (idx >= 0).mean() > _PALETTE_LIKE:
            errors.append(f"{f.role} {_rel(root, f.path)} holds only label colours: it looks "
                          "like a ground-truth file, not an image (ground truth belongs in "
                          "its own folder)")


def _check_finite(root: Path, f: _File, errors: list[str]) -> None:
    try:
        arr = isprs.read_raster(f.path)
    except Exception as exc:
        errors.append(f"cannot read {f.role} {_rel(root, f.path)}: {exc}")
        return
    bad = count_nonfinite(arr)
    if bad:
        nan = int(np.isnan(arr).sum())
        errors.append(f"{f.role} {_rel(root, f.path)} has {bad} non-finite pixel values ({nan} "
                      f"NaN, {bad - nan} infinite) of {arr.size}: the reader refuses it. Fill "
                      "the holes (e.g. gdal_fillnodata.py) or obtain an intact copy")


def _read_rgb(root: Path, f: _File, errors: list[str]) -> np.ndarray | None:
    try:
        rgb = isprs.read_raster(f.path)
    except Exception as exc:
        errors.append(f"cannot read {f.role} {_rel(root, f.path)}: {exc}")
        return None
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        errors.append(f"{f.role} {_rel(root, f.path)} is not a colour-coded RGB image (shape "
                      f"{rgb.shape}); use the official colour-coded files")
        return None
    return rgb


def _check_labels(root: Path, f: _File, classes: ClassTable, snap: bool, errors: list[str],
                  warns: list[str], res: TileResult,
                  extra: tuple[tuple[int, int, int], ...] = ()) -> np.ndarray | None:
    rgb = _read_rgb(root, f, errors)
    if rgb is None:
        return None
    codes = _codes(rgb)
    idx, counts = _match(codes, list(classes.colours) + list(classes.ignore_colours)
                         + list(extra))
    res.class_counts = counts[: classes.num_classes]
    unknown = idx < 0
    if unknown.any():
        share = 100 * unknown.mean()
        listed = _unknown_listing(codes[unknown])
        if snap:
            try:
                snapped = classes.decode(rgb, snap=True, source=_rel(root, f.path),
                                         extra_ignore=extra)
            except LabelColourError as exc:
                errors.append(f"{exc} (snap_labels refuses them)")
                return np.where(unknown, -1, idx)
            res.class_counts = np.bincount(snapped[snapped != IGNORE_INDEX].ravel(),
                                           minlength=classes.num_classes)
            warns.append(f"{_rel(root, f.path)}: {int(unknown.sum())} px ({share:.2f} %) have "
                         f"colours outside the palette ({listed}); snap_labels maps them to "
                         "the nearest palette colour or to ignore (black, far colours)")
        else:
            errors.append(f"{_rel(root, f.path)}: {int(unknown.sum())} px ({share:.2f} %) have "
                          f"colours outside the {classes.name} palette: {listed}. Palette: "
                          f"{_palette_text(classes)}. If the labels were resampled, read them "
                          "with snap_labels=True (aerialseg data check --snap-labels)")
    return np.where(unknown, -1, idx)


def _check_eroded(root: Path, f: _File, classes: ClassTable, snap: bool,
                  labels: np.ndarray | None, errors: list[str], warns: list[str]) -> None:
    rgb = _read_rgb(root, f, errors)
    if rgb is None:
        return
    codes = _codes(rgb)
    palette = list(classes.colours) + list(classes.ignore_colours)
    idx, _ = _match(codes, palette + [isprs.BLACK])
    unknown = idx < 0
    if unknown.any():
        listed = _unknown_listing(codes[unknown])
        msg = (f"{_rel(root, f.path)}: {int(unknown.sum())} px have colours outside the "
               f"palette and black: {listed}")
        if snap:
            warns.append(msg + "; snap_labels maps them to the nearest palette colour")
        else:
            errors.append(msg + ". Read with snap_labels=True if the file was resampled")
        return
    if labels is not None and labels.shape == idx.shape:
        kept = idx != len(palette)  # not black
        valid = kept & (labels >= 0)
        differ = float((idx[valid] != labels[valid]).mean()) if valid.any() else 0.0
        if differ > _ERODED_DISAGREE:
            warns.append(f"{_rel(root, f.path)} disagrees with the full ground truth on "
                         f"{100 * differ:.1f} % of its labelled pixels: do both files belong "
                         "to the same tile and release?")


# ----------------------------------------------------------------------- dataset checks

def _root_findings(dataset: str, root: Path, expected_dirs: Sequence[str],
                   findings: list[Finding]) -> bool:
    """Dataset-level findings about the root folder; False if it does not exist."""
    if not root.is_dir():
        findings.append(Finding(ERROR, "", f"the folder {root} does not exist. Pass the "
                                "dataset folder with --root DIR, or put the dataset in "
                                f"$AERIALSEG_DATA/{dataset} (default: data/{dataset} in the "
                                "checkout)"))
        return False
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        findings.append(Finding(ERROR, "", f"the folder {root} is empty"))
        return True
    if (root / "img_dir").is_dir() and (root / "ann_dir").is_dir() and dataset in (
            "vaihingen", "potsdam") and "img_dir" not in expected_dirs:
        findings.append(Finding(WARN, "", "this folder also holds an mmsegmentation-converted "
                                "copy (img_dir/, ann_dir/); the official files are checked "
                                "here, --layout mmseg checks the copy"))
    zips = [e for e in entries if e.lower().endswith(".zip")]
    if zips:
        findings.append(Finding(WARN, "", f"archives not extracted here? {', '.join(zips[:6])}"
                                " (extract them in place; the reader does not open zips)"))
    if not any((root / d).exists() for d in expected_dirs):
        shown = ", ".join(entries[:12]) + (" ..." if len(entries) > 12 else "")
        findings.append(Finding(WARN, "", f"none of the expected folders is directly under the "
                                f"root; found: {shown}"))
    return True


def _vaihingen_tile_files(root: Path, area: int,
                          bands: Sequence[str] = isprs.VAIHINGEN_BANDS) -> list[_File]:
    f = isprs.find_vaihingen_files(root, area)
    ndsm = isprs.vaihingen_ndsm(f)
    out = [_File("orthophoto", f["top"], "image", 3)]
    if "dsm" in bands:
        out.append(_File("DSM", f["dsm"], "height"))
    if "ndsm" in bands:
        out.append(_File("nDSM", ndsm, "height",
                         alternatives=() if ndsm.is_file() else (f["ndsm"],)))
    return out + _label_files(f, "gts", "gts_eroded")


def _label_files(f: dict[str, Path], full: str, eroded: str) -> list[_File]:
    if not f[full].is_file() and f[eroded].is_file():
        return [_File("eroded ground truth", f[eroded], "eroded_only", 3)]
    return [_File("ground truth", f[full], "label", 3),
            _File("eroded ground truth", f[eroded], "eroded", 3, required=False)]


def _potsdam_tile_files(root: Path, tile: str, bands: Sequence[str]) -> list[_File]:
    f = isprs.find_potsdam_files(root, tile)
    plan, lacking = isprs.potsdam_spectral_plan(f, bands)
    present = [p for p in ("rgb", "irrg", "rgbir") if f[p].is_file()]
    used = sorted({p for p, _ in plan.values()}) or present[:1]
    out = [_File(f"{p.upper()} orthophoto", f[p], "image", 4 if p == "rgbir" else 3)
           for p in used]
    if lacking or not used:
        # the reader takes a tile whose orthophoto of any kind exists: the right one must too
        options = isprs.potsdam_products_for(bands) or ["rgbir"]
        spectral = "+".join(b for b in bands if b in ("r", "g", "b", "ir"))
        out.append(_File(f"orthophoto with bands {spectral}", f[options[0]], "image", 3,
                         alternatives=tuple(f[p] for p in options[1:])))
        out = out[-1:] if not present else out
    if "dsm" in bands:
        out.append(_File("DSM", f["dsm"], "height"))
    if "ndsm" in bands:
        out.append(_File("nDSM", f["ndsm"], "height"))
    return out + _label_files(f, "label", "label_eroded")


_NO_CHECKSUMS = ("no published checksums (ISPRS publishes none for these archives); files "
                 "are checked for completeness, sizes and label colours instead")


def _isprs_hints(dataset: str, root: Path, tiles: list[TileResult], findings: list[Finding],
                 bands: Sequence[str]) -> None:
    """Add what to do when the files present call for other bands."""
    messages = " ".join(f.message for f in findings if f.level == ERROR)
    if dataset == "vaihingen" and ("missing DSM" in messages or "missing nDSM" in messages):
        findings.append(Finding(HINT, "", isprs.VAIHINGEN_BANDS_HINT))
    if dataset == "potsdam" and "missing orthophoto with bands" in messages:
        names = [t.name.removeprefix("tile ") for t in tiles if t.status != "absent"]
        found = [isprs.find_potsdam_files(root, t) for t in names]
        if any(f["rgb"].is_file() for f in found):
            heights = all(f["dsm"].is_file() and f["ndsm"].is_file() for f in found)
            choice = "rgb" if heights else "r+g+b"
            findings.append(Finding(HINT, "", (
                f"only RGB orthophotos are here: check and read them with --potsdam-bands "
                f"{choice} (data_options={{'potsdam_bands': '{choice}'}}); "
                + ("'rgb' is R, G, B with DSM and nDSM, 'r+g+b' colour only"
                   if heights else "'r+g+b' is colour only and needs no height files"))))


def _check_isprs(dataset: str, root: Path, *, split_name: str | None,
                 potsdam_bands: str | Sequence[str] | None, snap: bool,
                 vaihingen_bands: str | Sequence[str] | None = None,
                 val_tiles: Sequence[int | str] | None = None) -> CheckReport:
    findings: list[Finding] = []
    if dataset == "potsdam":
        named = isprs.get_named_split("potsdam", split_name)
        bands = isprs.parse_potsdam_bands(potsdam_bands)
        splits = {"train": tuple(str(t) for t in named.train),
                  "val": tuple(str(t) for t in named.val)}
        if val_tiles:
            splits = isprs.resplit(splits, [isprs.check_potsdam_tile(t) for t in val_tiles])
        everything: list[str] = list(isprs.POTSDAM_TILES)

        def files_of(t: str | int) -> list[_File]:
            return _potsdam_tile_files(root, str(t), bands)

        def label(t: str | int) -> str:
            return f"tile {t}"

        layout, source = isprs.POTSDAM_LAYOUT, isprs.POTSDAM_SOURCE
        expected = ("2_Ortho_RGB", "3_Ortho_IRRG", "4_Ortho_RGBIR", "1_DSM", "5_Labels_all",
                    "5_Labels_for_participants", "Potsdam", "potsdam")
        split_source = f"{named.source}; bands {'+'.join(bands)}"
    else:
        manifest = (root / "manifest.json").is_file()
        named = isprs.get_named_split("vaihingen", split_name)
        bands = isprs.parse_vaihingen_bands(vaihingen_bands)
        splits = isprs.vaihingen_split_areas(root, named.name, val_tiles) if root.is_dir() \
            else {"train": tuple(int(a) for a in named.train),
                  "val": tuple(int(a) for a in named.val)}
        everything = list(isprs.VAIHINGEN_AREAS)

        def files_of(t: str | int) -> list[_File]:
            return _vaihingen_tile_files(root, int(t), bands)

        def label(t: str | int) -> str:
            return f"area{t}"

        layout, source = isprs.VAIHINGEN_LAYOUT, isprs.VAIHINGEN_SOURCE
        expected = ("top", "dsm", "gts_for_participants", "gts_eroded_for_participants",
                    "ISPRS_semantic_labeling_Vaihingen", "Vaihingen")
        split_source = ("the synthetic manifest's split" if manifest else named.source)
        if tuple(bands) != isprs.VAIHINGEN_BANDS:
            split_source += f"; bands {'+'.join(bands)}"
        if manifest:
            named = None
    if val_tiles:
        split_source += f"; validation tiles {', '.join(str(t) for t in splits['val'])}"
    tiles: list[TileResult] = []
    if _root_findings(dataset, root, expected, findings):
        for split, ids in splits.items():
            for t in ids:
                tiles.append(_check_tile(root, label(t), split, files_of(t), snap=snap,
                                         classes=ISPRS, findings=findings))
        for split in splits if any(t.status != "absent" for t in tiles) else ():
            absent = [t.name for t in tiles if t.split == split and t.status == "absent"]
            if absent:
                findings.append(Finding(WARN, "", f"{len(absent)} of the {len(splits[split])} "
                                        f"{split} tiles have no orthophoto ({', '.join(absent)})"
                                        ": the reader skips them, so the split is incomplete"))
        in_split = {str(t) for ids in splits.values() for t in ids}
        others = [str(t) for t in everything if str(t) not in in_split
                  and files_of(t)[0].path.is_file()]
        reasons = {str(t): why for t, why in (named.unused if named else ())}
        for t in others:
            if t in reasons:
                findings.append(Finding(WARN, label(t), f"present, left out of the split: "
                                        f"{reasons[t]}"))
        plain = [t for t in others if t not in reasons]
        if plain:
            findings.append(Finding(WARN, "", f"also present, not used by this split: "
                                    f"{', '.join(plain)}"))
        present = [str(t) for ids in splits.values() for t in ids
                   if files_of(t)[0].path.is_file()] + others
        for split in splits:
            if any(t.status != "absent" for t in tiles) and not any(
                    t.split == split and t.status == OK for t in tiles):
                broken = any(t.split == split and t.status == "broken" for t in tiles)
                hint = "" if broken else isprs.empty_split_hint(split, present)
                findings.append(Finding(ERROR, "", f"no usable {split} tile: the reader cannot "
                                        f"load the {split} split.{hint}".rstrip(".")))
        if dataset == "potsdam" and named is not None and named.name in ("geoseg", "mmseg"):
            lacking = [t for t in tiles if t.split == "val" and t.status == "broken"
                       and not isprs.find_potsdam_files(root, t.name[5:])["label"].is_file()]
            if lacking:
                findings.append(Finding(ERROR, "", f"the {named.name} split evaluates on the 14 "
                                        "test tiles, whose labels are only in 5_Labels_all.zip "
                                        "(5_Labels_for_participants has the other 24)"))
        if not any(t.status != "absent" for t in tiles) and not any(
                f.level == ERROR for f in findings):
            findings.append(Finding(ERROR, "", f"no tile of the split was found under {root}"))
        _isprs_hints(dataset, root, tiles, findings, bands)
    return CheckReport(dataset, root, named.name if named else None, split_source, findings,
                       tiles, layout, source, _NO_CHECKSUMS)


def _check_synthetic(root: Path, snap: bool) -> CheckReport:
    source = ("Generated on first use by aerialseg.data.synthetic (`aerialseg data synthetic "
              "--profile default`); nothing to download.")
    if not root.is_dir():
        return CheckReport("synthetic", root, None, "", [Finding(
            ERROR, "", f"{root} has not been generated yet: `aerialseg data synthetic "
            "--profile <profile>` (or any chapter) generates it")], [],
            isprs.VAIHINGEN_LAYOUT, source, "not generated yet")
    report = _check_isprs("vaihingen", root, split_name=None, potsdam_bands=None, snap=snap)
    report.dataset = "synthetic"
    report.source = source
    manifest = root / "manifest.json"
    if not manifest.is_file():
        report.checksums = "no manifest.json: not a synthetic dataset written by aerialseg"
        report.findings.append(Finding(ERROR, "", f"{manifest} is missing; regenerate the "
                                       "folder (delete it; it is rebuilt on first use)"))
        return report
    sums = json.loads(manifest.read_text()).get("files", {})
    bad = []
    for rel, digest in sorted(sums.items()):
        p = root / rel
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            bad.append(rel)
    report.checksums = (f"{len(sums) - len(bad)}/{len(sums)} files match the SHA-256 sums of "
                        "manifest.json")
    if bad:
        report.findings.append(Finding(ERROR, "", "files missing or changed since generation: "
                                       + ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else "")
                                       + "; delete the folder to regenerate it"))
    return report


def _check_dubai(root: Path, snap: bool, val_tiles: Sequence[int | str] | None = None
                 ) -> CheckReport:
    from aerialseg.data import dubai

    findings: list[Finding] = []
    tiles: list[TileResult] = []
    layout = dubai._LAYOUT
    source = (f"Download the Kaggle dataset {dubai.DUBAI_KAGGLE} (CC0 1.0) and unzip it "
              "under the root.")
    expected = (dubai._FOLDER, *(f"Tile {n}" for n in dubai.DUBAI_TILES))
    present: list[int] = []
    val = tuple(dubai.check_dubai_tile(t) for t in (val_tiles or dubai.DUBAI_VAL_TILES))
    if _root_findings("dubai", root, expected, findings):
        base = root / dubai._FOLDER if (root / dubai._FOLDER).is_dir() else root
        folders = {dubai._tile_number(p): p for p in base.glob("Tile *") if p.is_dir()}
        present = sorted(n for n in folders if n >= 0)
        for n in present:
            split = "val" if n in val else "train"
            images = sorted((folders[n] / "images").glob("image_part_*.jpg"),
                            key=dubai._part_number)
            if not images:
                findings.append(Finding(ERROR, f"Tile {n}", "no images/image_part_*.jpg"))
            elif len(images) != dubai.DUBAI_PARTS:
                findings.append(Finding(WARN, f"Tile {n}", f"{len(images)} image parts, the "
                                        f"published tiles have {dubai.DUBAI_PARTS}"))
            for img in images:
                part = dubai._part_number(img)
                files = [_File("image", img, "image", 3),
                         _File("mask", folders[n] / "masks" / f"{img.stem}.png", "label", 3)]
                # the reader crops image and mask to their common part within 2 px
                tiles.append(_check_tile(
                    root, f"tile{n}_part{part:03d}", split, files, snap=snap, classes=DUBAI,
                    findings=findings, size_slack=dubai._MAX_SIZE_SLACK))
        absent = [n for n in dubai.DUBAI_TILES if n not in present]
        if present and absent:
            findings.append(Finding(WARN, "", f"{len(present)} of the {len(dubai.DUBAI_TILES)} "
                                    f"published tiles are present (Tile "
                                    f"{', Tile '.join(map(str, absent))} absent): absent "
                                    "training tiles only mean less training data"))
        if not present:
            findings.append(Finding(ERROR, "", "no 'Tile N/images/image_part_*.jpg' found"))
        else:
            missing_val = [n for n in val if n not in present]
            if len(missing_val) == len(val):
                example = present[-1]
                findings.append(Finding(ERROR, "", (
                    f"no validation tile: the validation tiles (Tile "
                    f"{', Tile '.join(map(str, val))}) are absent. Choose validation tiles "
                    f"among those present ({', '.join(map(str, present))}) with --val-tiles "
                    f"{example} (data_options={{'val_tiles': [{example}]}}); the other tiles "
                    "are then trained on")))
            elif missing_val:
                findings.append(Finding(ERROR, "", f"validation tiles {missing_val} are absent:"
                                        " choose others with --val-tiles"))
            if not any(t.split == "train" for t in tiles):
                findings.append(Finding(ERROR, "", "no training tile: every tile present is a "
                                        "validation tile; choose fewer with --val-tiles"))
    split = (f"by tile: Tile {', Tile '.join(map(str, val))} validation, the other tiles "
             "training")
    return CheckReport("dubai", root, None, split, findings, tiles, layout, source,
                       "no published checksums (Kaggle publishes none); files are checked "
                       "for completeness, sizes and mask colours instead", classes=DUBAI,
                       published=(len(present), len(dubai.DUBAI_TILES)), unit="parts")


def _check_index_pair(root: Path, name: str, split: str, image: Path, label: Path,
                      classes: ClassTable, ignore_values: tuple[int, ...],
                      findings: list[Finding], box: tuple[int, int, int, int] | None = None
                      ) -> tuple[TileResult, np.ndarray | None]:
    """Check an image and its index-coded label; returns the result and the class counts."""
    res = TileResult(name, split, OK, files=["image", "label"])
    errors = []
    img = lab = None
    for path, what in ((image, "image"), (label, "label")):
        if not path.is_file():
            errors.append(f"missing {what}: {_rel(root, path)}")
            continue
        try:
            arr = read_image(path, "RGB" if what == "image" else None)
        except Exception as exc:
            errors.append(str(exc))
            continue
        if what == "image":
            img = arr
        else:
            lab = arr
    if img is not None and lab is not None:
        if img.shape[:2] != lab.shape[:2]:
            errors.append(f"{_rel(root, image)} is {img.shape[0]}x{img.shape[1]} px but "
                          f"{_rel(root, label)} is {lab.shape[0]}x{lab.shape[1]} px")
        elif box is not None and img.shape[:2] != (box[3] - box[1], box[2] - box[0]):
            errors.append(f"{_rel(root, image)} is {img.shape[0]}x{img.shape[1]} px but its "
                          f"name says {box[3] - box[1]}x{box[2] - box[0]}")
        res.size = img.shape[:2]
        try:
            dec = classes.decode_indices(lab, offset=1, ignore_values=ignore_values,
                                         source=_rel(root, label))
            res.class_counts = np.bincount(dec[dec != IGNORE_INDEX].ravel(),
                                           minlength=classes.num_classes)
        except LabelValueError as exc:
            errors.append(str(exc))
    findings += [Finding(ERROR, name, m) for m in errors]
    if errors:
        res.status = "broken"
    return res, res.class_counts


def _check_mmseg(dataset: str, root: Path, *, split_name: str | None,
                 val_tiles: Sequence[int | str] | None) -> CheckReport:
    from aerialseg.data import mmseg

    findings: list[Finding] = []
    tiles: list[TileResult] = []
    named = isprs.get_named_split(dataset, split_name)
    source = isprs.VAIHINGEN_SOURCE if dataset == "vaihingen" else isprs.POTSDAM_SOURCE
    source += (" Converted copies come from mmsegmentation's tools/dataset_converters/"
               f"{dataset}.py; the official files carry more (full ground truth, heights).")
    if _root_findings(dataset, root, ("img_dir", "ann_dir"), findings):
        clips = mmseg.find_clips(root, dataset)
        findings.append(Finding(WARN, "", (
            f"an mmsegmentation-converted copy (img_dir/, ann_dir/): "
            f"{sum(map(len, clips.values()))} clips of {len(clips)} tiles, read back into "
            f"whole tiles; bands {'+'.join(mmseg.MMSEG_BANDS[dataset])} only, eroded labels "
            "only (full-ground-truth protocol unavailable)")))
        present = sorted(clips, key=lambda t: mmseg._tile_order(dataset, t))
        for split in ("train", "val"):
            try:
                ids = mmseg.mmseg_selection(root, dataset, split, split_name=named.name,
                                            val_tiles=val_tiles)
            except FileNotFoundError:
                ids = []
                hint = isprs.empty_split_hint(split, present)
                findings.append(Finding(ERROR, "", f"no {split} tile of split {named.name!r} "
                                        f"among the clips.{hint}".rstrip(".")))
            for t in ids:
                counts = np.zeros(ISPRS.num_classes, np.int64)
                status, size = OK, (0, 0)
                for c in clips[t]:
                    res, cc = _check_index_pair(root, mmseg.scene_name(dataset, t), split,
                                                c.image, c.label, ISPRS, (0, IGNORE_INDEX),
                                                findings, c.box)
                    if res.status != OK:
                        status = "broken"
                    if cc is not None:
                        counts += cc
                    if c.box:
                        size = (max(size[0], c.box[3]), max(size[1], c.box[2]))
                tiles.append(TileResult(mmseg.scene_name(dataset, t), split, status,
                                        size or None, [f"{len(clips[t])} clips"], counts))
        if not clips:
            findings.append(Finding(ERROR, "", "no clip in img_dir/train or img_dir/val"))
    return CheckReport(dataset, root, named.name, f"{named.source} (by tile id)", findings,
                       tiles, mmseg.MMSEG_LAYOUT, source, _NO_CHECKSUMS)


def _check_loveda(root: Path) -> CheckReport:
    from aerialseg.data import loveda

    findings: list[Finding] = []
    tiles: list[TileResult] = []
    if _root_findings("loveda", root, ("Train", "Val", "LoveDA"), findings):
        base = loveda.loveda_base(root)
        for split, folder in loveda._SPLIT_FOLDERS.items():
            n = 0
            for domain in loveda.LOVEDA_DOMAINS:
                for img in sorted((base / folder / domain / "images_png").glob("*.png"),
                                  key=loveda._id):
                    mask = base / folder / domain / "masks_png" / img.name
                    res, _ = _check_index_pair(root, f"{domain.lower()}_{img.stem}", split,
                                               img, mask, LOVEDA, (0, IGNORE_INDEX), findings)
                    tiles.append(res)
                    n += 1
            if not n:
                findings.append(Finding(ERROR, "", f"no {split} image: {folder}/Urban/"
                                        f"images_png and {folder}/Rural/images_png are empty or "
                                        f"absent ({folder}.zip not extracted?)"))
    return CheckReport("loveda", root, None, "Train/ is trained on, Val/ evaluated on",
                       findings, tiles, loveda.LOVEDA_LAYOUT, loveda.LOVEDA_SOURCE,
                       "no published checksums; images and masks are decoded and the mask "
                       "values checked instead", classes=LOVEDA)


def check_dataset(dataset: str, root: str | Path | None = None, *,
                  split_name: str | None = None,
                  potsdam_bands: str | Sequence[str] | None = None,
                  snap_labels: bool = False,
                  data_options: dict[str, Any] | str | None = None,
                  **options: Any) -> CheckReport:
    """Verify the files of ``dataset`` under ``root`` and return the report.

    Args:
        dataset: a registered dataset name (``vaihingen``, ``potsdam``, ``dubai``,
            ``loveda``, ``synthetic``).
        root: the dataset folder; None: where the library looks by default.
        split_name: named split whose tiles are checked (None: the dataset's default).
        potsdam_bands: Potsdam bands to check for (default ``irrg``).
        snap_labels: accept label colours near the palette, as the reader does with
            ``snap_labels`` (far colours are still errors).
        data_options: any data options (``vaihingen_bands``, ``val_tiles``, ``layout``, ...),
            as :func:`~aerialseg.data.registry.data_config` takes them.
        **options: data options by name (``vaihingen_bands="irrg"``, ``val_tiles=[4]``).

    Returns:
        The report; ``report.usable`` / ``report.exit_code()`` say whether the reader can
        load it, ``report.text()`` renders it.
    """
    from aerialseg.data.registry import data_config, dataset_root

    cfg = data_config(dataset, "default", data_options,
                      data_root=None if root is None else str(root), split_name=split_name,
                      potsdam_bands=potsdam_bands, snap_labels=snap_labels or None, **options)
    path = (Path(root) if root is not None else dataset_root(cfg)).expanduser().absolute()
    snap = cfg.snap_labels
    if dataset == "synthetic":
        return _check_synthetic(path, snap)
    if dataset == "dubai":
        return _check_dubai(path, snap, cfg.val_tiles)
    if dataset == "loveda":
        return _check_loveda(path)
    if dataset in ("vaihingen", "potsdam"):
        if cfg.layout == "mmseg":
            return _check_mmseg(dataset, path, split_name=cfg.split_name,
                                val_tiles=cfg.val_tiles)
        return _check_isprs(dataset, path, split_name=cfg.split_name,
                            potsdam_bands=cfg.potsdam_bands, snap=snap,
                            vaihingen_bands=cfg.vaihingen_bands, val_tiles=cfg.val_tiles)
    raise ValueError(f"no checker for dataset {dataset!r}")
