"""Verify a dataset download before use: ``aerialseg data check vaihingen --root DIR``.

For every tile of the chosen split the checker looks for each file the reader needs (in the
same places the reader looks), reads the raster headers, checks that the TIFF data lies
inside the file (a truncated download or extraction fails here), that the image, DSM, nDSM
and label rasters have the same size, that the label files hold only palette colours
(listing unknown colours with their pixel counts), that an eroded label file agrees with the
full one, and that an orthophoto is not a label image in disguise. The report says what is
fine, what is missing or wrong, where to get the data and the expected layout.

ISPRS publishes no checksums for its archives, so none are checked for Vaihingen and
Potsdam; the synthetic dataset is checked against the SHA-256 sums of its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from aerialseg.data import isprs
from aerialseg.data.classes import DUBAI, ISPRS, ClassTable

OK, WARN, ERROR = "ok", "warn", "error"
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
        return self.usable and all(t.status == OK for t in self.tiles)

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
        if self.tiles and all(t.status == "absent" for t in self.tiles):
            lines += ["", f"  none of the {len(self.tiles)} tiles of the split was found"]
        elif self.tiles:
            lines.append("")
            width = max(len(t.name) for t in self.tiles)
            for t in self.tiles:
                status = {OK: "OK", "absent": "ABSENT", "broken": "PROBLEM"}[t.status]
                size = f"{t.size[0]}x{t.size[1]} px" if t.size else ""
                what = {OK: ", ".join(t.files), "absent": f"(no {', '.join(t.files)})"}.get(
                    t.status, "")
                lines.append(f"  {t.split:5s} {t.name:{width}s}  {status:7s}  {size:13s} {what}"
                             .rstrip())
        shares = self._shares()
        if shares:
            lines += ["", "  class shares of the good tiles (full ground truth):", shares]
        for level, title in ((ERROR, "Problems (must be fixed)"), (WARN, "Warnings")):
            found = [f for f in self.findings if f.level == level]
            if found:
                lines += ["", f"{title}:"]
                lines += [textwrap.fill(f"- {f.where + ': ' if f.where else ''}{f.message}",
                                        width=100, initial_indent="  ",
                                        subsequent_indent="    ", break_on_hyphens=False,
                                        break_long_words=False) for f in found]
        lines.append("")
        counts = "; ".join(f"{s} {self.count(s)}/{self.total(s)} tiles OK"
                           for s in ("train", "val") if self.total(s))
        if self.complete:
            verdict = "USABLE and complete"
        elif self.usable:
            verdict = ("USABLE, but incomplete: results are not comparable with the papers' "
                       "until the absent tiles are added")
        else:
            verdict = f"NOT USABLE ({len(self.errors)} problem(s) above)"
        lines.append(f"Summary: {counts + ' -> ' if counts else ''}{verdict}.")
        if not self.complete:
            lines += ["", "Where to get it:",
                      textwrap.fill(self.source, width=100, initial_indent="  ",
                                    subsequent_indent="  ", break_on_hyphens=False,
                                    break_long_words=False),
                      "Expected layout:", self.layout]
        return "\n".join(lines)

    def _shares(self) -> str:
        counts = [t.class_counts for t in self.tiles if t.status == OK
                  and t.class_counts is not None]
        if not counts:
            return ""
        total = np.sum(counts, axis=0)
        share = total / max(int(total.sum()), 1)
        return "    " + ", ".join(f"{n} {100 * s:.1f} %"
                                  for n, s in zip(self.classes.names, share, strict=True))


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
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            size = os.path.getsize(path)
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
            if not ends or max(ends) > size:
                raise OSError(f"the file ends at byte {size} but its image data runs to byte "
                              f"{max(ends) if ends else '?'} (truncated download or extraction)")
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
        elif f.kind == "label":
            labels = _check_labels(root, f, classes, snap, errors, warns, res)
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
                  warns: list[str], res: TileResult) -> np.ndarray | None:
    rgb = _read_rgb(root, f, errors)
    if rgb is None:
        return None
    codes = _codes(rgb)
    idx, counts = _match(codes, list(classes.colours) + list(classes.ignore_colours))
    res.class_counts = counts[: classes.num_classes]
    unknown = idx < 0
    if unknown.any():
        share = 100 * unknown.mean()
        listed = _unknown_listing(codes[unknown])
        if snap:
            warns.append(f"{_rel(root, f.path)}: {int(unknown.sum())} px ({share:.2f} %) have "
                         f"colours outside the palette ({listed}); snap_labels maps them to "
                         "the nearest palette colour")
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
    if (root / "img_dir").is_dir() and (root / "ann_dir").is_dir():
        findings.append(Finding(ERROR, "", "this looks like an mmsegmentation-converted copy "
                                "(img_dir/, ann_dir/): its 512 px clips and index labels are "
                                "not the official files; use the original archives"))
    zips = [e for e in entries if e.lower().endswith(".zip")]
    if zips:
        findings.append(Finding(WARN, "", f"archives not extracted here? {', '.join(zips[:6])}"
                                " (extract them in place; the reader does not open zips)"))
    if not any((root / d).exists() for d in expected_dirs):
        shown = ", ".join(entries[:12]) + (" ..." if len(entries) > 12 else "")
        findings.append(Finding(WARN, "", f"none of the expected folders is directly under the "
                                f"root; found: {shown}"))
    return True


def _vaihingen_tile_files(root: Path, area: int) -> list[_File]:
    f = isprs.find_vaihingen_files(root, area)
    ndsm = isprs.vaihingen_ndsm(f)
    return [
        _File("orthophoto", f["top"], "image", 3),
        _File("DSM", f["dsm"], "height"),
        _File("nDSM", ndsm, "height",
              alternatives=() if ndsm.is_file() else (f["ndsm"],)),
        _File("ground truth", f["gts"], "label", 3),
        _File("eroded ground truth", f["gts_eroded"], "eroded", 3, required=False),
    ]


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
    out.append(_File("ground truth", f["label"], "label", 3))
    out.append(_File("eroded ground truth", f["label_eroded"], "eroded", 3, required=False))
    return out


_NO_CHECKSUMS = ("no published checksums (ISPRS publishes none for these archives); files "
                 "are checked for completeness, sizes and label colours instead")


def _check_isprs(dataset: str, root: Path, *, split_name: str | None,
                 potsdam_bands: str | Sequence[str] | None, snap: bool) -> CheckReport:
    findings: list[Finding] = []
    if dataset == "potsdam":
        named = isprs.get_named_split("potsdam", split_name)
        bands = isprs.parse_potsdam_bands(potsdam_bands)
        splits = {"train": [str(t) for t in named.train], "val": [str(t) for t in named.val]}
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
        areas = isprs.vaihingen_split_areas(root, named.name) if root.is_dir() else {
            "train": tuple(int(a) for a in named.train),
            "val": tuple(int(a) for a in named.val)}
        splits = {k: list(v) for k, v in areas.items()}
        everything = list(isprs.VAIHINGEN_AREAS)

        def files_of(t: str | int) -> list[_File]:
            return _vaihingen_tile_files(root, int(t))

        def label(t: str | int) -> str:
            return f"area{t}"

        layout, source = isprs.VAIHINGEN_LAYOUT, isprs.VAIHINGEN_SOURCE
        expected = ("top", "dsm", "gts_for_participants", "ISPRS_semantic_labeling_Vaihingen",
                    "Vaihingen")
        split_source = ("the synthetic manifest's split" if manifest else named.source)
        if manifest:
            named = None
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
        for split in splits:
            if any(t.status != "absent" for t in tiles) and not any(
                    t.split == split and t.status == OK for t in tiles):
                findings.append(Finding(ERROR, "", f"no usable {split} tile: the reader cannot "
                                        f"load the {split} split"))
        if dataset == "potsdam" and named is not None and named.name == "geoseg":
            lacking = [t for t in tiles if t.split == "val" and t.status == "broken"
                       and not isprs.find_potsdam_files(root, t.name[5:])["label"].is_file()]
            if lacking:
                findings.append(Finding(ERROR, "", "the geoseg split evaluates on the 14 test "
                                        "tiles, whose labels are only in 5_Labels_all.zip "
                                        "(5_Labels_for_participants has the other 24)"))
        if not any(t.status != "absent" for t in tiles) and not any(
                f.level == ERROR for f in findings):
            findings.append(Finding(ERROR, "", f"no tile of the split was found under {root}"))
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


def _check_dubai(root: Path, snap: bool) -> CheckReport:
    from aerialseg.data import dubai

    findings: list[Finding] = []
    tiles: list[TileResult] = []
    layout = dubai._LAYOUT
    source = (f"Download the Kaggle dataset {dubai.DUBAI_KAGGLE} (CC0 1.0) and unzip it "
              "under the root.")
    if _root_findings("dubai", root, (dubai._FOLDER,), findings):
        base = root / dubai._FOLDER if (root / dubai._FOLDER).is_dir() else root
        for tile in sorted(base.glob("Tile *"), key=dubai._tile_number):
            for img in sorted((tile / "images").glob("image_part_*.jpg"), key=dubai._part_number):
                part = dubai._part_number(img)
                split = "val" if part in dubai.DUBAI_VAL_PARTS else "train"
                files = [_File("image", img, "image", 3),
                         _File("mask", tile / "masks" / f"{img.stem}.png", "label", 3)]
                # the reader crops image and mask to their common part within 2 px
                tiles.append(_check_tile(
                    root, f"tile{dubai._tile_number(tile)}_part{part:03d}", split, files,
                    snap=snap, classes=DUBAI, findings=findings,
                    size_slack=dubai._MAX_SIZE_SLACK))
        if not tiles:
            findings.append(Finding(ERROR, "", "no 'Tile N/images/image_part_*.jpg' found"))
    return CheckReport("dubai", root, None, "image parts 3, 6, 9 of every tile are validation",
                       findings, tiles, layout, source,
                       "no published checksums (Kaggle publishes none); files are checked "
                       "for completeness, sizes and mask colours instead", classes=DUBAI)


def check_dataset(dataset: str, root: str | Path | None = None, *,
                  split_name: str | None = None,
                  potsdam_bands: str | Sequence[str] | None = None,
                  snap_labels: bool = False) -> CheckReport:
    """Verify the files of ``dataset`` under ``root`` and return the report.

    Args:
        dataset: a registered dataset name (``vaihingen``, ``potsdam``, ``dubai``,
            ``synthetic``).
        root: the dataset folder; None: where the library looks by default.
        split_name: named split whose tiles are checked (None: the dataset's default).
        potsdam_bands: Potsdam bands to check for (default ``irrg``).
        snap_labels: accept (with a warning) label colours outside the palette.

    Returns:
        The report; ``report.usable`` / ``report.exit_code()`` say whether the reader can
        load it, ``report.text()`` renders it.
    """
    from aerialseg.data.registry import data_config, dataset_root

    cfg = data_config(dataset, "default", data_root=None if root is None else str(root),
                      split_name=split_name, potsdam_bands=potsdam_bands)
    path = (Path(root) if root is not None else dataset_root(cfg)).expanduser().absolute()
    if dataset == "synthetic":
        return _check_synthetic(path, snap_labels)
    if dataset == "dubai":
        return _check_dubai(path, snap_labels)
    if dataset in ("vaihingen", "potsdam"):
        return _check_isprs(dataset, path, split_name=cfg.split_name,
                            potsdam_bands=cfg.potsdam_bands, snap=snap_labels)
    raise ValueError(f"no checker for dataset {dataset!r}")
