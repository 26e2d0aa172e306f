"""Readers for the ISPRS 2D semantic labelling datasets, Vaihingen and Potsdam.

Both read the files as they come out of the official archives; :mod:`aerialseg.data.check`
verifies a download before use (``aerialseg data check vaihingen``).

Vaihingen layout (9 cm, IR-R-G)::

    <root>/
      top/top_mosaic_09cm_area{N}.tif                         IR-R-G orthophoto, uint8
      dsm/dsm_09cm_matching_area{N}.tif                       DSM, float32, metres
      ndsm/dsm_09cm_matching_area{N}_normalized.jpg           Gerke's nDSM, 8-bit
        or ndsm/ndsm_09cm_matching_area{N}.tif                nDSM, float32, metres (ours)
      gts_for_participants/top_mosaic_09cm_area{N}.tif        colour-coded ground truth
      gts_eroded_for_participants/top_mosaic_09cm_area{N}_noBoundary.tif   optional
        (a set with only the eroded files loads too: ``Scene.full_truth`` is then False)

Potsdam layout (5 cm; tile ``X_Y`` such as ``2_10``; zero-padded ``0X_0Y`` in DSM names)::

    <root>/
      2_Ortho_RGB/top_potsdam_X_Y_RGB.tif                     R-G-B, uint8
      3_Ortho_IRRG/top_potsdam_X_Y_IRRG.tif                   IR-R-G, uint8
      4_Ortho_RGBIR/top_potsdam_X_Y_RGBIR.tif                 R-G-B-IR, uint8
      1_DSM/dsm_potsdam_0X_0Y.tif                             DSM, float32, metres
      1_DSM_normalisation/dsm_potsdam_0X_0Y_normalized_lastools.jpg   nDSM, 8-bit
      5_Labels_all/top_potsdam_X_Y_label.tif                  colour-coded ground truth
        (or 5_Labels_for_participants/, the 24 tiles of the first release)
      5_Labels_all_noBoundary/top_potsdam_X_Y_label_noBoundary.tif     optional
        (or 5_Labels_for_participants_no_Boundary/)

Common variants are accepted too: everything under an extra ``ISPRS_semantic_labeling_*``,
``Vaihingen`` or ``Potsdam`` folder, and files whose names cannot collide in one flat folder.
The 8-bit nDSM JPEGs keep their grey values (0..255, not metres), so models that use them
must normalise them like any other band. Splits are named (:data:`VAIHINGEN_SPLITS`,
:data:`POTSDAM_SPLITS`), or given by ``val_tiles`` (training: the rest of the named split);
no model is ever selected on a split's ``val`` tiles. The mmsegmentation-converted layout
(``img_dir/``, ``ann_dir/``) is read by :mod:`aerialseg.data.mmseg`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aerialseg.data.classes import IGNORE_INDEX, ISPRS
from aerialseg.data.errors import DatasetNotFoundError
from aerialseg.data.io import raster_size, read_raster, require_finite
from aerialseg.data.scene import Scene

__all__ = ["raster_size", "read_raster"]  # re-exported: check.py and tests read through here

ISPRS_URL = "https://www.isprs.org/education/benchmarks/UrbanSemLab/default.aspx"
VAIHINGEN_URL = ISPRS_URL
POTSDAM_URL = ISPRS_URL
_SPLITS = ("train", "val")
BLACK = (0, 0, 0)
"""Colour of the eroded boundary in the ``*_noBoundary`` ground truth."""


@dataclass(frozen=True)
class NamedSplit:
    """A published train/evaluation split.

    Attributes:
        name: value of the ``split_name`` data parameter.
        train: tiles the models are trained on.
        val: tiles every model is evaluated on (the papers' validation or test tiles). No
            model is ever selected on them: the library trains for a fixed number of epochs
            and evaluates the final weights.
        unused: ``(tile, reason)`` for labelled tiles the recipe leaves out.
        source: where the split comes from.
    """

    name: str
    train: tuple[int | str, ...]
    val: tuple[int | str, ...]
    unused: tuple[tuple[int | str, str], ...] = ()
    source: str = ""


# ------------------------------------------------------------------------------ Vaihingen

VAIHINGEN_TRAIN_AREAS: tuple[int, ...] = (1, 3, 5, 7, 13, 17, 21, 23, 26, 32, 37)
"""The usual training areas of Vaihingen (11 of the 16 areas with released ground truth)."""

VAIHINGEN_VAL_AREAS: tuple[int, ...] = (11, 15, 28, 30, 34)
"""The usual validation areas of Vaihingen (the other 5)."""

VAIHINGEN_TEST_AREAS: tuple[int, ...] = (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31,
                                         33, 35, 38)
"""The 17 areas whose ground truth was withheld in the contest (labelled in the complete
release)."""

VAIHINGEN_AREAS: tuple[int, ...] = tuple(sorted(VAIHINGEN_TRAIN_AREAS + VAIHINGEN_VAL_AREAS
                                                + VAIHINGEN_TEST_AREAS))
"""All 33 Vaihingen areas with an orthophoto."""

VAIHINGEN_BANDS: tuple[str, ...] = ("ir", "r", "g", "dsm", "ndsm")
"""Band order of Vaihingen scenes (all bands; ``vaihingen_bands`` selects some)."""

VAIHINGEN_BAND_PRESETS: dict[str, tuple[str, ...]] = {
    "all": VAIHINGEN_BANDS,
    "irrg": ("ir", "r", "g"),
}
"""``vaihingen_bands`` presets. ``irrg`` reads the orthophoto only: no DSM or nDSM files are
needed (unlike Potsdam's ``irrg`` preset, which names the orthophoto product and includes
the heights). Other selections are band names joined by ``+`` (``"ir+r+g+ndsm"``)."""

_KAMPFFMEYER_SOURCE = ("Kampffmeyer et al. 2016; CSE-UNet (Wang & Xie 2020) uses the same "
                       "areas")
VAIHINGEN_SPLITS: dict[str, NamedSplit] = {
    "kampffmeyer": NamedSplit("kampffmeyer", VAIHINGEN_TRAIN_AREAS, VAIHINGEN_VAL_AREAS,
                              source=_KAMPFFMEYER_SOURCE),
    "cse_unet": NamedSplit("cse_unet", VAIHINGEN_TRAIN_AREAS, VAIHINGEN_VAL_AREAS,
                           source=_KAMPFFMEYER_SOURCE),
    "mmseg": NamedSplit("mmseg", tuple(sorted(VAIHINGEN_TRAIN_AREAS + VAIHINGEN_VAL_AREAS)),
                        VAIHINGEN_TEST_AREAS,
                        source="mmsegmentation's converter (tools/dataset_converters/"
                        "vaihingen.py): the 16 areas labelled in 2016 vs the 17 test areas"),
}
"""Named Vaihingen splits; ``kampffmeyer`` is the default (``cse_unet`` is the same).
``mmseg`` is the split of mmsegmentation's converted copies (its ``train``/``val``
folders); its test areas are labelled only in the complete release."""

# (folders tried in order, relative to a base; "" is the base itself), file name
_V_BASES = ("", "ISPRS_semantic_labeling_Vaihingen", "Vaihingen")
_V_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "top": (("top", ""), "top_mosaic_09cm_area{n}.tif"),
    "dsm": (("dsm", ""), "dsm_09cm_matching_area{n}.tif"),
    "ndsm": (("ndsm",), "ndsm_09cm_matching_area{n}.tif"),
    "ndsm_gerke": (("ndsm", "dsm", "nDSM", ""), "dsm_09cm_matching_area{n}_normalized.jpg"),
    # the orthophoto has the same file name: ground truth is only looked for in folders
    "gts": (("gts_for_participants", "gts_complete",
             "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE"),
            "top_mosaic_09cm_area{n}.tif"),
    "gts_eroded": (("gts_eroded_for_participants", "gts_eroded_complete",
                    "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE", ""),
                   "top_mosaic_09cm_area{n}_noBoundary.tif"),
}
VAIHINGEN_BANDS_HINT = (
    "No DSM/nDSM files? Read the IR-R-G orthophotos only with vaihingen_bands='irrg' "
    "(data_options={'vaihingen_bands': 'irrg'}; on the command line --vaihingen-bands irrg).")

VAIHINGEN_LAYOUT = """\
  <root>/
    top/top_mosaic_09cm_area{N}.tif                      IR-R-G orthophoto (uint8, 3 bands)
    dsm/dsm_09cm_matching_area{N}.tif                    DSM (float32, metres)
    ndsm/dsm_09cm_matching_area{N}_normalized.jpg        Gerke's nDSM (8-bit JPEG), or
    ndsm/ndsm_09cm_matching_area{N}.tif                  an nDSM in metres (float32)
    gts_for_participants/top_mosaic_09cm_area{N}.tif     colour-coded ground truth (RGB)
    gts_eroded_for_participants/top_mosaic_09cm_area{N}_noBoundary.tif   (optional) eroded GT
  (only the eroded GT, without gts_for_participants/, also loads: eroded protocol only;
  vaihingen_bands='irrg' needs no dsm/ or ndsm/)"""

VAIHINGEN_SOURCE = (
    f"Obtain Vaihingen from the ISPRS 2D Semantic Labeling Contest, {VAIHINGEN_URL} (the "
    "data is distributed on request by ISPRS: ISPRS_semantic_labeling_Vaihingen.zip holds "
    "top/, dsm/ and gts_for_participants/; the eroded ground truth and Gerke's normalised "
    "DSM are offered on the same page; the complete ground truth of all 33 areas comes as "
    "ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip and "
    "..._ground_truth_eroded_COMPLETE.zip). Unpack it so that the folders above sit "
    "directly under the root (or under <root>/ISPRS_semantic_labeling_Vaihingen/).")


def vaihingen_files(root: Path, area: int) -> dict[str, Path]:
    """Canonical paths of every file of one area (whether or not they exist).

    Keys: ``top``, ``dsm``, ``ndsm`` (float metres), ``ndsm_gerke`` (8-bit JPEG), ``gts``,
    ``gts_eroded``. :func:`find_vaihingen_files` resolves the accepted variants.
    """
    root = Path(root)
    return {k: root / folders[0] / name.format(n=area)
            for k, (folders, name) in _V_FILES.items()}


def _resolve(root: Path, bases: Sequence[str], table: dict[str, tuple[tuple[str, ...], str]],
             fmt: dict[str, str | int]) -> dict[str, Path]:
    out = {}
    for key, (folders, name) in table.items():
        fname = name.format(**fmt)
        cands = [root / b / f / fname for b in bases for f in folders]
        out[key] = next((p for p in cands if p.is_file()), cands[0])
    return out


def find_vaihingen_files(root: Path, area: int) -> dict[str, Path]:
    """Paths of one area's files as found under ``root`` (canonical where absent).

    Accepts the layout of :func:`vaihingen_files`, the same under
    ``ISPRS_semantic_labeling_Vaihingen/`` or ``Vaihingen/``, ground truth in
    ``gts_complete/`` or the folders named after the complete-release archives, and
    orthophotos, DSMs, nDSMs and eroded ground truth directly in the base folder.
    """
    return _resolve(Path(root), _V_BASES, _V_FILES, {"n": area})


def vaihingen_ndsm(files: dict[str, Path]) -> Path:
    """The nDSM an area uses: ours in metres if present, else Gerke's JPEG."""
    return files["ndsm"] if files["ndsm"].is_file() else files["ndsm_gerke"]


def vaihingen_split_areas(root: Path, split_name: str = "kampffmeyer",
                          val_tiles: Sequence[int | str] | None = None
                          ) -> dict[str, tuple[int, ...]]:
    """Area ids of each split under ``root``.

    The named split (:data:`VAIHINGEN_SPLITS`), unless ``root`` holds a synthetic dataset
    whose ``manifest.json`` lists its own splits (it does when it has more scenes than
    Vaihingen has areas). With ``val_tiles``, those areas are the ``val`` split and the
    other areas of the split (train and val) are ``train``.
    """
    out = None
    manifest = Path(root) / "manifest.json"
    if manifest.is_file():
        try:
            splits = json.loads(manifest.read_text())["splits"]
            out = {s: tuple(int(a) for a in splits[s]) for s in _SPLITS}
        except (KeyError, TypeError, ValueError):
            pass  # not one of our manifests: the named split applies
    if out is None:
        named = get_named_split("vaihingen", split_name)
        out = {"train": tuple(int(a) for a in named.train),
               "val": tuple(int(a) for a in named.val)}
    if val_tiles:
        return resplit(out, [check_vaihingen_area(a) for a in val_tiles])
    return out


def resplit(splits: dict[str, tuple], val: Sequence) -> dict[str, tuple]:
    """``val`` as the validation tiles and the rest of ``splits`` (train, then val) as train."""
    val = tuple(dict.fromkeys(val))
    pool = dict.fromkeys(tuple(splits["train"]) + tuple(splits["val"]))
    return {"train": tuple(t for t in pool if t not in val), "val": val}


def check_vaihingen_area(area: int | str) -> int:
    """Normalise an area id (``11``, ``"11"``, ``"area11"``) or fail clearly."""
    text = str(area).strip().lower().removeprefix("area")
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise ValueError(f"unknown Vaihingen area {area!r}: areas are numbers such as 11 (or "
                         f"'area11'); the labelled ones are {list(VAIHINGEN_AREAS)}")
    return n


def parse_vaihingen_bands(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Band names of a ``vaihingen_bands`` value: a preset, ``"ir+r+g"`` or a sequence."""
    if spec is None:
        return VAIHINGEN_BANDS
    if isinstance(spec, str):
        names = VAIHINGEN_BAND_PRESETS.get(spec.strip().lower()) or tuple(
            s.strip().lower() for s in spec.replace(",", "+").split("+") if s.strip())
    else:
        names = tuple(str(s).lower() for s in spec)
    bad = [n for n in names if n not in VAIHINGEN_BANDS]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(
            f"vaihingen_bands={spec!r}: choose a preset (all: ir, r, g, dsm, ndsm; irrg: ir, "
            f"r, g, no DSM/nDSM files needed) or distinct band names from {VAIHINGEN_BANDS} "
            "joined by '+', e.g. 'ir+r+g+ndsm'")
    return names


def _not_found(dataset: str, root: Path, what: str, missing: Sequence[Path], layout: str,
               source: str) -> DatasetNotFoundError:
    listed = "\n".join(f"    {p.relative_to(root) if p.is_relative_to(root) else p}"
                       for p in missing[:20])
    more = f"\n    ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    return DatasetNotFoundError(
        f"ISPRS {dataset} dataset not found under {root}: {what}.\n"
        + (f"  Missing files:\n{listed}{more}\n" if missing else "")
        + f"  Expected layout:\n{layout}\n  {source} "
        f"`aerialseg data check {dataset.lower()} --root {root}` lists what is missing or "
        "wrong. Without real data, the embedded synthetic stand-in "
        "(aerialseg.data.synthetic.ensure_synthetic) writes the Vaihingen layout."
    )


# -------------------------------------------------------------------------------- Potsdam

POTSDAM_LABELLED_TILES: tuple[str, ...] = (
    "2_10", "2_11", "2_12", "3_10", "3_11", "3_12", "4_10", "4_11", "4_12", "5_10", "5_11",
    "5_12", "6_7", "6_8", "6_9", "6_10", "6_11", "6_12", "7_7", "7_8", "7_9", "7_10", "7_11",
    "7_12")
"""The 24 tiles labelled in the first release (``5_Labels_for_participants``)."""

POTSDAM_TEST_TILES: tuple[str, ...] = (
    "2_13", "2_14", "3_13", "3_14", "4_13", "4_14", "4_15", "5_13", "5_14", "5_15", "6_13",
    "6_14", "6_15", "7_13")
"""The 14 tiles whose labels were withheld (labelled in ``5_Labels_all``)."""

POTSDAM_TILES: tuple[str, ...] = POTSDAM_LABELLED_TILES + POTSDAM_TEST_TILES
"""All 38 Potsdam tiles."""

POTSDAM_BAND_NAMES: tuple[str, ...] = ("r", "g", "b", "ir", "dsm", "ndsm")
"""Every band a Potsdam scene can have."""

POTSDAM_BAND_PRESETS: dict[str, tuple[str, ...]] = {
    "irrg": ("ir", "r", "g", "dsm", "ndsm"),
    "rgb": ("r", "g", "b", "dsm", "ndsm"),
    "rgbir": ("r", "g", "b", "ir", "dsm", "ndsm"),
}
"""``potsdam_bands`` presets; ``irrg`` (the default) gives Vaihingen's five bands. Other
selections are band names joined by ``+`` (``"r+g+b"``: colour only, no height)."""

_P_PRODUCTS: dict[str, tuple[str, ...]] = {
    "rgb": ("r", "g", "b"), "irrg": ("ir", "r", "g"), "rgbir": ("r", "g", "b", "ir")}

_CSE_TRAIN = tuple(t for t in POTSDAM_LABELLED_TILES
                   if t not in ("4_12", "2_12", "3_12", "5_12", "6_12", "7_12"))
_GEOSEG_TRAIN = tuple(t for t in POTSDAM_LABELLED_TILES if t not in ("2_10", "7_10"))
POTSDAM_SPLITS: dict[str, NamedSplit] = {
    "cse_unet": NamedSplit(
        "cse_unet", _CSE_TRAIN, ("2_12", "3_12", "5_12", "6_12", "7_12"),
        unused=(("4_12", "dropped by CSE-UNet as mislabelled"),),
        source="Wang & Xie 2020 (CSE-UNet)"),
    "geoseg": NamedSplit(
        "geoseg", _GEOSEG_TRAIN, POTSDAM_TEST_TILES,
        unused=(("2_10", "GeoSeg's validation tile: the library never selects models, so it "
                 "is left out rather than used"),
                ("7_10", "excluded by GeoSeg (erroneous annotation)")),
        source="GeoSeg convention, used by Lossd (Ma et al. 2026)"),
    "mmseg": NamedSplit(
        "mmseg", POTSDAM_LABELLED_TILES, POTSDAM_TEST_TILES,
        source="mmsegmentation's converter (tools/dataset_converters/potsdam.py): the 24 "
        "tiles labelled first vs the 14 test tiles"),
}
"""Named Potsdam splits; ``cse_unet`` is the default. ``geoseg`` and ``mmseg`` evaluate on
the 14 test tiles, whose labels are only in the complete release (``5_Labels_all``);
``mmseg`` is the split of mmsegmentation's converted copies."""

_P_BASES = ("", "Potsdam", "potsdam", "ISPRS_semantic_labeling_Potsdam")
_P_FILES: dict[str, tuple[tuple[str, ...], str]] = {
    "rgb": (("2_Ortho_RGB", ""), "top_potsdam_{t}_RGB.tif"),
    "irrg": (("3_Ortho_IRRG", ""), "top_potsdam_{t}_IRRG.tif"),
    "rgbir": (("4_Ortho_RGBIR", ""), "top_potsdam_{t}_RGBIR.tif"),
    "dsm": (("1_DSM", ""), "dsm_potsdam_{p}.tif"),
    "ndsm": (("1_DSM_normalisation", ""), "dsm_potsdam_{p}_normalized_lastools.jpg"),
    "label": (("5_Labels_all", "5_Labels_for_participants", ""), "top_potsdam_{t}_label.tif"),
    "label_eroded": (("5_Labels_all_noBoundary", "5_Labels_for_participants_no_Boundary", ""),
                     "top_potsdam_{t}_label_noBoundary.tif"),
}

POTSDAM_LAYOUT = """\
  <root>/
    2_Ortho_RGB/top_potsdam_X_Y_RGB.tif                  R-G-B orthophoto (uint8), and/or
    3_Ortho_IRRG/top_potsdam_X_Y_IRRG.tif                IR-R-G orthophoto (uint8), and/or
    4_Ortho_RGBIR/top_potsdam_X_Y_RGBIR.tif              R-G-B-IR orthophoto (uint8, 4 bands)
    1_DSM/dsm_potsdam_0X_0Y.tif                          DSM (float32, metres)
    1_DSM_normalisation/dsm_potsdam_0X_0Y_normalized_lastools.jpg   nDSM (8-bit JPEG)
    5_Labels_all/top_potsdam_X_Y_label.tif               colour-coded ground truth (RGB)
      (or 5_Labels_for_participants/: the 24 tiles of the first release)
    5_Labels_all_noBoundary/top_potsdam_X_Y_label_noBoundary.tif    (optional) eroded GT
  X_Y is a tile id such as 2_10 or 6_7 (zero-padded 02_10, 06_07 in the DSM names)."""

POTSDAM_SOURCE = (
    f"Obtain Potsdam from the ISPRS 2D Semantic Labeling Contest, {POTSDAM_URL} (distributed "
    "on request by ISPRS as 1_DSM.zip, 1_DSM_normalisation.zip, 2_Ortho_RGB.zip, "
    "3_Ortho_IRRG.zip, 4_Ortho_RGBIR.zip, 5_Labels_all.zip, 5_Labels_all_noBoundary.zip, ...; "
    "each archive unpacks into the folder of the same name). Put those folders directly "
    "under the root (or under <root>/Potsdam/). Only the orthophoto product of the chosen "
    "bands is needed (potsdam_bands: irrg, rgb or rgbir).")


def _padded(tile: str) -> str:
    a, b = tile.split("_")
    return f"{int(a):02d}_{int(b):02d}"


def check_potsdam_tile(tile: str) -> str:
    """Normalise a tile id (``"2_10"``; ``"02_10"`` and ``"tile2_10"`` are accepted)."""
    try:
        a, b = str(tile).strip().lower().removeprefix("tile").split("_")
        tid = f"{int(a)}_{int(b)}"
    except ValueError:
        tid = None
    if tid not in POTSDAM_TILES:
        raise ValueError(f"unknown Potsdam tile {tile!r}; tiles are X_Y such as 2_10: "
                         f"{', '.join(POTSDAM_TILES)}")
    return tid


def potsdam_files(root: Path, tile: str) -> dict[str, Path]:
    """Canonical paths of every file of one tile (whether or not they exist).

    Keys: ``rgb``, ``irrg``, ``rgbir``, ``dsm``, ``ndsm``, ``label``, ``label_eroded``.
    """
    root, tile = Path(root), check_potsdam_tile(tile)
    return {k: root / folders[0] / name.format(t=tile, p=_padded(tile))
            for k, (folders, name) in _P_FILES.items()}


def find_potsdam_files(root: Path, tile: str) -> dict[str, Path]:
    """Paths of one tile's files as found under ``root`` (canonical where absent).

    Accepts the layout of :func:`potsdam_files`, the same under ``Potsdam/`` or
    ``ISPRS_semantic_labeling_Potsdam/``, the first-release label folders, and all files in
    one flat folder (Potsdam file names never collide).
    """
    tile = check_potsdam_tile(tile)
    return _resolve(Path(root), _P_BASES, _P_FILES, {"t": tile, "p": _padded(tile)})


def parse_potsdam_bands(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """Band names of a ``potsdam_bands`` value: a preset, ``"r+g+b"`` or a sequence."""
    if spec is None:
        return POTSDAM_BAND_PRESETS["irrg"]
    if isinstance(spec, str):
        names = POTSDAM_BAND_PRESETS.get(spec.lower()) or tuple(
            s.strip().lower() for s in spec.replace(",", "+").split("+") if s.strip())
    else:
        names = tuple(str(s).lower() for s in spec)
    bad = [n for n in names if n not in POTSDAM_BAND_NAMES]
    if bad or not names or len(set(names)) != len(names):
        raise ValueError(
            f"potsdam_bands={spec!r}: choose a preset ({', '.join(POTSDAM_BAND_PRESETS)}) or "
            f"distinct band names from {POTSDAM_BAND_NAMES} joined by '+', e.g. 'r+g+b'")
    return names


def potsdam_spectral_plan(files: dict[str, Path], bands: Sequence[str]
                          ) -> tuple[dict[str, tuple[str, int]], list[str]]:
    """Which orthophoto product (and channel) each spectral band is read from.

    One product that holds every requested band is preferred (RGB, then IRRG, then RGBIR);
    otherwise each band comes from the first product present that has it.

    Returns:
        ``{band: (product, channel)}`` and the spectral bands no present product provides.
    """
    spectral = [b for b in bands if b in ("r", "g", "b", "ir")]
    present = [p for p in ("rgb", "irrg", "rgbir") if files[p].is_file()]
    for p in present:
        if set(spectral) <= set(_P_PRODUCTS[p]):
            return {b: (p, _P_PRODUCTS[p].index(b)) for b in spectral}, []
    plan, missing = {}, []
    for b in spectral:
        src = next((p for p in present if b in _P_PRODUCTS[p]), None)
        if src is None:
            missing.append(b)
        else:
            plan[b] = (src, _P_PRODUCTS[src].index(b))
    return plan, missing


def potsdam_products_for(bands: Sequence[str]) -> list[str]:
    """Orthophoto products that alone provide every spectral band in ``bands``."""
    spectral = {b for b in bands if b in ("r", "g", "b", "ir")}
    return [p for p in ("rgb", "irrg", "rgbir") if spectral <= set(_P_PRODUCTS[p])]


def preferred_potsdam_product(bands: Sequence[str]) -> str:
    """The smallest orthophoto product holding every spectral band of ``bands``."""
    return (potsdam_products_for(bands) or ["rgbir"])[0]


# ------------------------------------------------------------------------- raster reading

def _as_hwc(img: np.ndarray, path: Path, channels: int) -> np.ndarray:
    """Bring an image to (H, W, C>=channels); accepts planar (C, H, W) arrays too."""
    if img.ndim == 3 and img.shape[-1] < channels <= img.shape[0]:
        img = np.moveaxis(img, 0, -1)
    if img.ndim != 3 or img.shape[-1] < channels:
        raise ValueError(f"{path}: expected an image with {channels} channels, got shape "
                         f"{img.shape}")
    return img


def _as_hw(img: np.ndarray, path: Path) -> np.ndarray:
    img = np.squeeze(img)
    if img.ndim == 3:  # e.g. an RGB-saved height image: take the first channel
        img = img[..., 0] if img.shape[-1] <= 4 else img[0]
    if img.ndim != 2:
        raise ValueError(f"{path}: expected a single-band raster, got shape {img.shape}")
    return img


def _scaled(img: np.ndarray) -> np.ndarray:
    """Spectral bands to [0, 1] float32 by the dtype's range (uint8 / 255)."""
    out = img.astype(np.float32)
    if np.issubdtype(img.dtype, np.integer):
        out /= float(np.iinfo(img.dtype).max)
    return out


def check_sizes(root: Path, what: str, paths: Sequence[Path]) -> None:
    """Fail clearly if the rasters of one tile differ in size (read from the headers)."""
    shapes = {p: raster_size(p) for p in paths}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{p.relative_to(root) if p.is_relative_to(root) else p}: "
                           f"{s[0]}x{s[1]}" for p, s in shapes.items())
        raise ValueError(f"{what}: the files of one tile must have the same size (H x W), got "
                         f"{listed}. Check that they belong to the same tile and were not "
                         "resampled (`aerialseg data check` lists every mismatch).")


def decode_labels(gts_path: Path, eroded_path: Path | None, *, snap: bool = False,
                  max_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Class indices of a colour-coded ISPRS label file, and the eroded-protocol mask.

    Args:
        gts_path: full ground truth (RGB, ISPRS palette).
        eroded_path: ``*_noBoundary`` file (black boundary) or None.
        snap: snap colours outside the palette (for resampled labels; see
            :mod:`aerialseg.data.classes`) instead of failing.
        max_size: crop to the top-left square of this side.

    Raises:
        LabelColourError: unknown colours (listed with pixel counts and the file).
        CorruptFileError: a file is truncated or damaged.
    """
    gts = _as_hwc(read_raster(gts_path, max_size), gts_path, 3)
    labels = ISPRS.decode(gts, snap=snap, source=str(gts_path))
    if eroded_path is None:
        return labels, None
    eroded = _as_hwc(read_raster(eroded_path, max_size), eroded_path, 3)
    dec = ISPRS.decode(eroded, snap=snap, source=str(eroded_path), extra_ignore=(BLACK,))
    return labels, (dec != IGNORE_INDEX) & (labels != IGNORE_INDEX)


def read_isprs_labels(gts_path: Path | None, eroded_path: Path | None, *, snap: bool = False,
                      max_size: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Labels, eroded-protocol mask and ``full_truth`` of one tile.

    With the full ground truth: :func:`decode_labels`. With only the eroded file
    (``*_noBoundary``): its labels, ignore on the black boundary band, the mask
    ``labels != ignore`` and ``full_truth`` False.
    """
    if gts_path is not None:
        labels, mask = decode_labels(gts_path, eroded_path, snap=snap, max_size=max_size)
        return labels, mask, True
    if eroded_path is None:
        raise ValueError("a tile needs its full or its eroded ground truth")
    eroded = _as_hwc(read_raster(eroded_path, max_size), eroded_path, 3)
    labels = ISPRS.decode(eroded, snap=snap, source=str(eroded_path), extra_ignore=(BLACK,))
    return labels, labels != IGNORE_INDEX, False


def _tile_scene(name: str, split: str, bands: list[np.ndarray], band_names: tuple[str, ...],
                labels: np.ndarray, eval_mask: np.ndarray | None, *, full_truth: bool = True,
                sources: Sequence[Path] = ()) -> Scene:
    return Scene(name=name, bands=np.ascontiguousarray(np.stack(bands), dtype=np.float32),
                 band_names=band_names, labels=labels, classes=ISPRS, split=split,
                 eval_mask=eval_mask, full_truth=full_truth,
                 sources=tuple(str(p) for p in sources))


def _read_height(path: Path, max_size: int | None, what: str) -> np.ndarray:
    arr = _as_hw(read_raster(path, max_size), path).astype(np.float32)
    return require_finite(arr, path, what)


def _labelled(files: dict[str, Path], full: str, eroded: str) -> tuple[Path | None,
                                                                        Path | None]:
    return (files[full] if files[full].is_file() else None,
            files[eroded] if files[eroded].is_file() else None)


def present_tiles(dataset: str, root: Path) -> list[str]:
    """Tiles (Vaihingen areas, Potsdam tiles) whose orthophoto exists under ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    if dataset == "vaihingen":
        return [str(a) for a in VAIHINGEN_AREAS if find_vaihingen_files(root, a)["top"].is_file()]
    return [t for t in POTSDAM_TILES
            if any(find_potsdam_files(root, t)[p].is_file() for p in ("rgb", "irrg", "rgbir"))]


def empty_split_hint(split: str, present: Sequence[str], what: str = "tiles") -> str:
    """How to choose validation tiles when a split has none (names ``val_tiles``)."""
    if not present:
        return ""
    shown = ", ".join(str(p) for p in present[:20]) + (" ..." if len(present) > 20 else "")
    example = str(present[-1])
    example = example if example.isdigit() else repr(example)
    if split == "val":
        return (f" {what.capitalize()} present: {shown}. None of them is a validation "
                f"{what[:-1]} of this split: choose validation {what} among them with "
                f"val_tiles, e.g. data_options={{'val_tiles': [{example}]}} (--val-tiles "
                f"{present[-1]} on the command line); the other {what} are then trained on")
    return (f" {what.capitalize()} present: {shown}; all are validation {what}: choose fewer "
            "with val_tiles (data_options={'val_tiles': [...]}, --val-tiles) so that some "
            "remain for training")


# ------------------------------------------------------------------------- Vaihingen read

def vaihingen_used_files(files: dict[str, Path], bands: Sequence[str] = VAIHINGEN_BANDS
                         ) -> list[Path]:
    """The files of one area that the reader opens for ``bands`` (those that exist)."""
    gts, eroded = _labelled(files, "gts", "gts_eroded")
    used = [files["top"]]
    used += [files["dsm"]] if "dsm" in bands else []
    used += [vaihingen_ndsm(files)] if "ndsm" in bands else []
    return used + [p for p in (gts, eroded) if p is not None]


def _load_area(root: Path, area: int, files: dict[str, Path], split: str, snap: bool,
               max_size: int | None, bands: Sequence[str] = VAIHINGEN_BANDS) -> Scene:
    gts, eroded = _labelled(files, "gts", "gts_eroded")
    used = vaihingen_used_files(files, bands)
    check_sizes(root, f"Vaihingen area {area}", used)
    top = None
    if any(b in ("ir", "r", "g") for b in bands):
        top = _as_hwc(read_raster(files["top"], max_size), files["top"], 3)[..., :3]
        require_finite(top, files["top"], "orthophoto")
    out = []
    for b in bands:
        if b in ("ir", "r", "g"):
            out.append(_scaled(top[..., ("ir", "r", "g").index(b)]))
        elif b == "dsm":
            out.append(_read_height(files["dsm"], max_size, "DSM"))
        else:  # Gerke's JPEG keeps its 8-bit grey values (see the module docstring)
            out.append(_read_height(vaihingen_ndsm(files), max_size, "nDSM"))
    labels, eval_mask, full = read_isprs_labels(gts, eroded, snap=snap, max_size=max_size)
    return _tile_scene(f"area{area}", split, out, tuple(bands), labels, eval_mask,
                       full_truth=full, sources=used)


def vaihingen_missing(files: dict[str, Path], bands: Sequence[str] = VAIHINGEN_BANDS
                      ) -> list[Path]:
    """Required files of one area that do not exist.

    The DSM and nDSM only when ``bands`` has them; the full ground truth unless the eroded
    one is there (an eroded-only set loads with ``Scene.full_truth`` False).
    """
    missing = [files["top"]] if not files["top"].is_file() else []
    if "dsm" in bands and not files["dsm"].is_file():
        missing.append(files["dsm"])
    if "ndsm" in bands and not (files["ndsm"].is_file() or files["ndsm_gerke"].is_file()):
        missing.append(files["ndsm_gerke"])
    if not (files["gts"].is_file() or files["gts_eroded"].is_file()):
        missing.append(files["gts"])
    return missing


def vaihingen_selection(root: Path, split: str, *, split_name: str = "kampffmeyer",
                        val_tiles: Sequence[int | str] | None = None,
                        max_scenes: int | None = None) -> list[int]:
    """The areas :func:`load_vaihingen` reads for ``split`` (without reading them).

    The split's areas whose orthophoto exists; with ``val_tiles``, the ``val`` split is
    exactly those areas (a missing one is an error when read).

    Raises:
        DatasetNotFoundError: no area of the split is present (the message lists the areas
            that are, and how to choose validation areas with ``val_tiles``).
    """
    root = Path(root)
    if not root.is_dir():
        raise _not_found("Vaihingen", root, "the root folder does not exist", [],
                         VAIHINGEN_LAYOUT, VAIHINGEN_SOURCE)
    candidates = vaihingen_split_areas(root, split_name, val_tiles)[split]
    if val_tiles and split == "val":
        selected = list(candidates)
    else:
        selected = [a for a in candidates if find_vaihingen_files(root, a)["top"].is_file()]
    if not selected:
        missing = [find_vaihingen_files(root, a)["top"] for a in candidates]
        hint = empty_split_hint(split, present_tiles("vaihingen", root), "areas")
        raise _not_found("Vaihingen", root, f"no orthophoto of the {split!r} split's areas "
                         f"{list(candidates)} exists.{hint}", missing, VAIHINGEN_LAYOUT,
                         VAIHINGEN_SOURCE)
    return selected[:max_scenes] if max_scenes is not None else selected


def load_vaihingen(root: Path, split: str, *, areas: Sequence[int] | None = None,
                   split_name: str = "kampffmeyer", snap_labels: bool = False,
                   max_size: int | None = None, max_scenes: int | None = None,
                   bands: str | Sequence[str] | None = None,
                   val_tiles: Sequence[int | str] | None = None) -> list[Scene]:
    """Read the scenes of one split from a Vaihingen-layout folder.

    Args:
        root: folder holding ``top/``, ``dsm/``, ``ndsm/``, ``gts_for_participants/`` (and
            optionally ``gts_eroded_for_participants/``); see :func:`find_vaihingen_files`
            for the accepted variants.
        split: ``"train"`` or ``"val"``; picks the split's areas whose orthophoto exists under
            ``root`` (see :func:`vaihingen_split_areas`). Recorded as ``Scene.split``.
        areas: read exactly these area ids instead (all must exist).
        split_name: named split (:data:`VAIHINGEN_SPLITS`); a synthetic manifest overrides it.
        snap_labels: snap label colours outside the palette (see
            :mod:`aerialseg.data.classes`).
        max_size: crop every area to its top-left ``max_size`` square while reading.
        max_scenes: read at most this many areas (the first ones of the split).
        bands: ``vaihingen_bands`` value (:func:`parse_vaihingen_bands`; default all five);
            ``"irrg"`` needs no DSM or nDSM files.
        val_tiles: validation areas; the other areas of the split are trained on.

    Returns:
        One :class:`Scene` per area with the chosen bands (IR-R-G scaled to [0, 1], DSM in
        metres, nDSM as stored), ``eval_mask`` from the eroded ground truth if present, else
        None; ``full_truth`` False where only the eroded ground truth exists.

    Raises:
        DatasetNotFoundError: the root, or a required file of a selected area, is missing.
        ValueError: unknown split, split name or band, or the files of an area differ in size.
        LabelColourError: a ground-truth file holds colours outside the ISPRS palette.
        CorruptFileError: a file is truncated or damaged.
        NonFiniteRasterError: a DSM or nDSM holds NaN or infinite values.
    """
    root = Path(root)
    names = parse_vaihingen_bands(bands)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if areas is None:
        selected = vaihingen_selection(root, split, split_name=split_name,
                                       val_tiles=val_tiles, max_scenes=max_scenes)
    else:
        if not root.is_dir():
            raise _not_found("Vaihingen", root, "the root folder does not exist", [],
                             VAIHINGEN_LAYOUT, VAIHINGEN_SOURCE)
        selected = [int(a) for a in areas]
        if not selected:
            raise ValueError("areas is empty: pass None to read the whole split")
        selected = selected[:max_scenes] if max_scenes is not None else selected
    missing = [p for a in selected
               for p in vaihingen_missing(find_vaihingen_files(root, a), names)]
    if missing:
        heights = any(p.name.startswith("dsm_") for p in missing)
        raise _not_found("Vaihingen", root, f"required files of areas {selected} are missing"
                         + (f". {VAIHINGEN_BANDS_HINT}" if heights else ""),
                         missing, VAIHINGEN_LAYOUT, VAIHINGEN_SOURCE)
    return [_load_area(root, a, find_vaihingen_files(root, a), split, snap_labels, max_size,
                       names) for a in selected]


# --------------------------------------------------------------------------- Potsdam read

POTSDAM_BANDS_HINT = (
    "Only RGB orthophotos (2_Ortho_RGB)? Choose potsdam_bands='rgb' (R, G, B + DSM, nDSM) "
    "or 'r+g+b' (colour only, no height files): data_options={'potsdam_bands': 'r+g+b'}, "
    "on the command line --potsdam-bands r+g+b.")


def potsdam_missing(files: dict[str, Path], bands: Sequence[str]) -> list[Path]:
    """Required files of one tile for ``bands`` that do not exist.

    A missing orthophoto is reported as the preferred product for the bands; the full
    labels are not required when the eroded ones exist (``Scene.full_truth`` False).
    """
    _, lacking = potsdam_spectral_plan(files, bands)
    missing = [files[preferred_potsdam_product(bands)]] if lacking else []
    missing += [files[k] for k in ("dsm", "ndsm") if k in bands and not files[k].is_file()]
    if not (files["label"].is_file() or files["label_eroded"].is_file()):
        missing.append(files["label"])
    return missing


def potsdam_used_files(files: dict[str, Path], bands: Sequence[str]) -> list[Path]:
    """The files of one tile that the reader opens for ``bands`` (those that exist)."""
    plan, _ = potsdam_spectral_plan(files, bands)
    label, eroded = _labelled(files, "label", "label_eroded")
    return ([files[p] for p in sorted({p for p, _ in plan.values()})]
            + [files[k] for k in ("dsm", "ndsm") if k in bands]
            + [p for p in (label, eroded) if p is not None])


def _load_tile(root: Path, tile: str, files: dict[str, Path], split: str,
               bands: tuple[str, ...], snap: bool, max_size: int | None) -> Scene:
    plan, _ = potsdam_spectral_plan(files, bands)
    products = sorted({p for p, _ in plan.values()})
    label, eroded = _labelled(files, "label", "label_eroded")
    used = potsdam_used_files(files, bands)
    check_sizes(root, f"Potsdam tile {tile}", used)
    images = {p: _as_hwc(read_raster(files[p], max_size), files[p], len(_P_PRODUCTS[p]))
              for p in products}
    out = []
    for b in bands:
        if b in plan:
            p, ch = plan[b]
            out.append(_scaled(images[p][..., ch]))
        else:  # dsm (metres) or ndsm (8-bit grey values, kept unscaled)
            out.append(_read_height(files[b], max_size, b.upper()))
    del images
    labels, eval_mask, full = read_isprs_labels(label, eroded, snap=snap, max_size=max_size)
    return _tile_scene(f"tile{tile}", split, out, tuple(bands), labels, eval_mask,
                       full_truth=full, sources=used)


def potsdam_selection(root: Path, split: str, *, split_name: str = "cse_unet",
                      bands: str | Sequence[str] | None = None,
                      val_tiles: Sequence[str] | None = None,
                      max_scenes: int | None = None) -> list[str]:
    """The tiles :func:`load_potsdam` reads for ``split`` (without reading them).

    Raises:
        DatasetNotFoundError: no tile of the split is present (the message lists the tiles
            that are, and how to choose validation tiles with ``val_tiles``).
    """
    root = Path(root)
    names = parse_potsdam_bands(bands)
    if not root.is_dir():
        raise _not_found("Potsdam", root, "the root folder does not exist", [],
                         POTSDAM_LAYOUT, POTSDAM_SOURCE)
    named = get_named_split("potsdam", split_name)
    splits = {"train": tuple(str(t) for t in named.train),
              "val": tuple(str(t) for t in named.val)}
    if val_tiles:
        splits = resplit(splits, [check_potsdam_tile(t) for t in val_tiles])
    candidates = list(splits[split])
    if val_tiles and split == "val":
        selected = candidates
    else:
        selected = [t for t in candidates if any(
            find_potsdam_files(root, t)[p].is_file() for p in ("rgb", "irrg", "rgbir"))]
    if not selected:
        missing = [find_potsdam_files(root, t)[preferred_potsdam_product(names)]
                   for t in candidates]
        hint = empty_split_hint(split, present_tiles("potsdam", root), "tiles")
        raise _not_found("Potsdam", root, f"no orthophoto of the {split!r} tiles of split "
                         f"{named.name!r} exists.{hint}", missing, POTSDAM_LAYOUT,
                         POTSDAM_SOURCE)
    return selected[:max_scenes] if max_scenes is not None else selected


def load_potsdam(root: Path, split: str, *, split_name: str = "cse_unet",
                 bands: str | Sequence[str] | None = None, tiles: Sequence[str] | None = None,
                 snap_labels: bool = False, max_size: int | None = None,
                 max_scenes: int | None = None,
                 val_tiles: Sequence[str] | None = None) -> list[Scene]:
    """Read the scenes of one split from a Potsdam-layout folder.

    Args:
        root: folder holding the official folders (``2_Ortho_RGB/``, ``1_DSM/``,
            ``5_Labels_all/``, ...); see :func:`find_potsdam_files` for the variants.
        split: ``"train"`` or ``"val"`` of ``split_name``; tiles whose orthophoto is absent
            are skipped.
        split_name: named split (:data:`POTSDAM_SPLITS`): ``cse_unet``, ``geoseg``, ``mmseg``.
        bands: ``potsdam_bands`` value (:func:`parse_potsdam_bands`; default ``irrg``: IR, R,
            G, DSM, nDSM).
        tiles: read exactly these tiles instead (all must exist).
        snap_labels: snap label colours outside the palette (see
            :mod:`aerialseg.data.classes`).
        max_size: crop every tile to its top-left ``max_size`` square while reading.
        max_scenes: read at most this many tiles (the first ones of the split).
        val_tiles: validation tiles; the other tiles of the split are trained on.

    Returns:
        One :class:`Scene` per tile, named ``tile{X_Y}``; spectral bands scaled to [0, 1],
        DSM in metres, nDSM as 8-bit grey values; ``eval_mask`` from the eroded ground
        truth if present, else None; ``full_truth`` False where only eroded labels exist.

    Raises:
        DatasetNotFoundError: the root, or a required file of a selected tile, is missing.
        ValueError: unknown split, split name, tile or band, or a tile's files differ in size.
        LabelColourError: a label file holds colours outside the ISPRS palette.
        CorruptFileError: a file is truncated or damaged.
        NonFiniteRasterError: a DSM or nDSM holds NaN or infinite values.
    """
    root = Path(root)
    names = parse_potsdam_bands(bands)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    if tiles is None:
        selected = potsdam_selection(root, split, split_name=split_name, bands=names,
                                     val_tiles=val_tiles, max_scenes=max_scenes)
    else:
        if not root.is_dir():
            raise _not_found("Potsdam", root, "the root folder does not exist", [],
                             POTSDAM_LAYOUT, POTSDAM_SOURCE)
        selected = [check_potsdam_tile(t) for t in tiles]
        if not selected:
            raise ValueError("tiles is empty: pass None to read the whole split")
        selected = selected[:max_scenes] if max_scenes is not None else selected
    missing = [p for t in selected for p in potsdam_missing(find_potsdam_files(root, t), names)]
    if missing:
        images = any(not p.name.endswith(("_label.tif", "_noBoundary.tif")) for p in missing)
        rgb = any(find_potsdam_files(root, t)["rgb"].is_file() for t in selected)
        hint = f". {POTSDAM_BANDS_HINT}" if images and rgb and names != ("r", "g", "b") else ""
        raise _not_found("Potsdam", root, f"required files of tiles {selected} for bands "
                         f"{'+'.join(names)} are missing{hint}", missing, POTSDAM_LAYOUT,
                         POTSDAM_SOURCE)
    return [_load_tile(root, t, find_potsdam_files(root, t), split, names, snap_labels,
                       max_size) for t in selected]


# ---------------------------------------------------------------------------- splits API

NAMED_SPLITS: dict[str, dict[str, NamedSplit]] = {"vaihingen": VAIHINGEN_SPLITS,
                                                  "potsdam": POTSDAM_SPLITS}
DEFAULT_SPLIT: dict[str, str] = {"vaihingen": "kampffmeyer", "potsdam": "cse_unet"}


def get_named_split(dataset: str, split_name: str | None) -> NamedSplit:
    """The named split of an ISPRS dataset (``None``: the dataset's default)."""
    splits = NAMED_SPLITS[dataset]
    name = split_name or DEFAULT_SPLIT[dataset]
    if name not in splits:
        raise ValueError(f"unknown split_name {name!r} for {dataset}; choose one of "
                         f"{sorted(splits)}")
    return splits[name]
