"""What a reader sees of an executed chapter: the runner's post-processing after papermill.

:func:`postprocess` rewrites an executed notebook (``book/chapters/NN_topic.ipynb``) so that
the rendered page reads like a publication; chapter authors steer it with cell tags and with
:func:`aerialseg.plots.show`:

* ``injected-parameters`` (papermill's cell): removed from the page (``remove-cell``);
* ``parameters``: its input hidden behind a "show" toggle (``hide-input``);
* ``summary``: its input removed (``remove-input``), its output (sentences) shown;
* ``remove-input`` / ``hide-input`` / ``remove-output`` / ``remove-cell`` set by the author
  work as in MyST-NB;
* a figure shown with :func:`aerialseg.plots.show` becomes a numbered MyST-NB figure with its
  caption, name and alt text (a cell showing several gets split, one figure per cell; a
  figure without a name gets ``fig-<chapter>-<k>``);
* a table made by :mod:`aerialseg.tables` gets its number, "Table 3.2", from the chapter
  number and its order in the chapter;
* machine paths in outputs are made relative to the checkout (``/…/repo/results/x.nc`` →
  ``results/x.nc``), the home folder becomes ``~``, the Python prefix ``<python>``.

Stderr never reaches a page (``execute.stderr_output: remove`` in ``_config.yml``).
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

from aerialseg.paths import repo_root
from aerialseg.plots import FIGURE_KEY

SUMMARY_TAG = "summary"
"""Tag of a chapter's summary cell: the code that writes the sentences is not shown."""
TAG_RULES = {"injected-parameters": "remove-cell", "parameters": "hide-input",
             SUMMARY_TAG: "remove-input"}
"""Tag the runner adds to a cell that carries the key."""
_TABLE_NUMBER = re.compile(r'<span class="aerialseg-table-number">[^<]*</span>')


def chapter_number(name: str) -> str:
    """``"03_fcn_mfb"`` → ``"3"`` (the number figures and tables are numbered under).

    A page of another edition (``"03_fcn_mfb__dubai"``) takes its number from the table of
    contents, where the book numbers it (:func:`toc_number`; Sphinx numbers the chapters of
    the numbered parts one after the other), so its tables match its figures.
    """
    stem = Path(name).stem
    if "__" in stem:
        number = toc_number(stem)
        if number:
            return number
    head = stem.split("_", 1)[0]
    return str(int(head)) if head.isdigit() else ""


def toc_number(stem: str, toc: Path | None = None) -> str:
    """The chapter number the book gives page ``book/chapters/<stem>`` ("" if unnumbered).

    Chapters of the TOC's ``numbered`` parts are numbered 1, 2, ... in order across the
    parts (Jupyter Book's continuous numbering); sections do not count.
    """
    import yaml

    path = toc or repo_root() / "_toc.yml"
    if not path.is_file():
        return ""
    count = 0
    for part in yaml.safe_load(path.read_text()).get("parts", []):
        if not part.get("numbered"):
            if any(str(c.get("file", "")).endswith(f"/{stem}") for c in part.get("chapters", [])):
                return ""
            continue
        for c in part.get("chapters", []):
            count += 1
            if str(c.get("file", "")).endswith(f"/{stem}"):
                return str(count)
    return ""


def _text(v: Any) -> str:
    return "".join(v) if isinstance(v, list) else str(v)


def _replacements(root: Path | None = None) -> list[tuple[str, str]]:
    root = (root or repo_root()).resolve()
    pairs = [(str(root) + "/", ""), (str(root), ".")]
    for prefix in {sys.prefix, sys.base_prefix}:
        pairs.append((str(Path(prefix).resolve()) + "/", "<python>/"))
    home = str(Path.home())
    if home not in ("/", ""):
        pairs.append((home + "/", "~/"))
    # longest first: the checkout may sit in the home folder
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def scrub(text: str, pairs: list[tuple[str, str]] | None = None) -> str:
    """``text`` without machine paths (see the module docstring)."""
    for old, new in pairs if pairs is not None else _replacements():
        text = text.replace(old, new)
    return text


def _scrub_output(out: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    if out.get("output_type") == "stream":
        out["text"] = scrub(_text(out.get("text", "")), pairs)
    for mime in ("text/plain", "text/html", "text/markdown"):
        if mime in out.get("data", {}):
            out["data"][mime] = scrub(_text(out["data"][mime]), pairs)


def _new_cell(template: dict[str, Any], suffix: str, outputs: list[dict[str, Any]],
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """A cell without input holding ``outputs`` split off ``template``."""
    inherited = [t for t in template.get("metadata", {}).get("tags", [])
                 if t in ("remove-cell", "remove-output")]
    # MyST-NB skips a cell without source: a comment keeps it (the input is removed)
    cell = {"cell_type": "code", "execution_count": None,
            "source": f"# output of the cell above ({suffix})",
            "metadata": {"tags": ["remove-input", *inherited], **(metadata or {})},
            "outputs": outputs}
    if "id" in template:
        cell["id"] = f"{template['id']}-{suffix}"[:64]
    return cell


def _figure_meta(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {"mystnb": {"figure": {"caption": spec["caption"], "name": name},
                       "image": {"alt": spec["alt"]}}}


def postprocess(nb: dict[str, Any], *, name: str = "", root: Path | None = None,
                edition: str = "") -> dict[str, Any]:
    """The executed notebook ``nb`` (nbformat dict) ready for the book (a new dict).

    Args:
        nb: the notebook papermill wrote.
        name: the chapter (``"03_fcn_mfb"``): numbers tables and names unnamed figures.
        root: the checkout whose paths are made relative (default this one).
        edition: ``""`` for the main (synthetic) edition, ``"__dubai"`` for another
            dataset's page: see :func:`retarget_edition`.
    """
    nb = copy.deepcopy(nb)
    pairs = _replacements(root)
    number = chapter_number(name + edition) if name else ""
    stem = Path(name).stem if name else "fig"
    fig_count = 0
    table_count = 0
    names: set[str] = set()
    cells: list[dict[str, Any]] = []
    for cell in nb.get("cells", []):
        meta = cell.setdefault("metadata", {})
        tags = list(meta.get("tags", []))
        for key, tag in TAG_RULES.items():
            if key in tags and tag not in tags:
                tags.append(tag)
        if tags:
            meta["tags"] = tags
        if cell.get("cell_type") != "code":
            cells.append(cell)
            continue
        for out in cell.get("outputs", []):
            _scrub_output(out, pairs)
            html = out.get("data", {}).get("text/html")
            if html is not None and _TABLE_NUMBER.search(_text(html)):
                def numbered(_: re.Match[str]) -> str:
                    nonlocal table_count
                    table_count += 1
                    label = f"{number}.{table_count}" if number else str(table_count)
                    return f'<span class="aerialseg-table-number">Table {label}</span>'
                out["data"]["text/html"] = _TABLE_NUMBER.sub(numbered, _text(html))
        figures = [i for i, o in enumerate(cell.get("outputs", []))
                   if FIGURE_KEY in o.get("metadata", {})]
        if not figures:
            cells.append(cell)
            continue
        outputs = cell["outputs"]
        cell["outputs"] = []
        pieces = [cell]
        current = cell
        for i, out in enumerate(outputs):
            if i not in figures:
                if current is not cell and "mystnb" in current["metadata"]:
                    current = _new_cell(cell, f"out{i}", [])
                    pieces.append(current)
                current["outputs"].append(out)
                continue
            spec = out["metadata"].pop(FIGURE_KEY)
            fig_count += 1
            label = spec.get("name") or f"fig-{stem.replace('_', '-')}-{fig_count}"
            base, k = label, 2
            while label in names:
                label = f"{base}-{k}"
                k += 1
            names.add(label)
            if len(outputs) == 1:  # the cell shows only this figure: caption it in place
                cell["metadata"].update(_figure_meta(spec, label))
                cell["outputs"] = [out]
                break
            current = _new_cell(cell, f"fig{fig_count}", [out], _figure_meta(spec, label))
            pieces.append(current)
        cells.extend(pieces)
    nb["cells"] = cells
    if edition:
        nb = retarget_edition(nb, edition)
    pm = nb.get("metadata", {}).get("papermill")
    if isinstance(pm, dict):
        for key in ("input_path", "output_path"):
            if isinstance(pm.get(key), str):
                pm[key] = Path(pm[key]).name
    return nb


def postprocess_file(path: str | Path, *, name: str | None = None) -> Path:
    """Post-process the executed notebook at ``path`` in place (see :func:`postprocess`).

    A page named ``NN_topic__<dataset>.ipynb`` belongs to that dataset's edition.
    """
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    stem, _, dataset = path.stem.partition("__")
    out = postprocess(nb, name=name or stem, edition=f"__{dataset}" if dataset else "")
    nbformat.write(nbformat.from_dict(out), path)
    return path


_TARGET = re.compile(r"^\(([A-Za-z][\w-]*)\)=\s*$", re.M)
_REF = re.compile(r"\{(numref|ref|eq)\}`([^`<]*<)?([A-Za-z][\w-]*)(>?)`")
_DOC = re.compile(r"\{doc\}`([^`<]*<)?(\d\d_[a-z0-9_]+)(>?)`")


def retarget_edition(nb: dict[str, Any], edition: str, *,
                     shared: tuple[str, ...] = ("10_",)) -> dict[str, Any]:
    """Make another dataset's page live beside the main edition's in one book.

    Labels must be unique in the whole book, so every figure name and every ``(label)=``
    target of the page gets the edition's suffix (``fcn-mfb-per-class`` →
    ``fcn-mfb-per-class-dubai``), and the page's ``{numref}``/``{ref}`` roles follow them;
    ``{doc}`` links to sibling chapters point to the same edition (``03_fcn_mfb`` →
    ``03_fcn_mfb__dubai``), except to chapters every edition shares (``shared``: chapter
    10, which compares the datasets). Labels of other pages (``protocol-ece``) are left
    alone. Idempotent.

    Args:
        nb: a post-processed notebook (nbformat dict); changed in place and returned.
        edition: the page suffix, ``"__dubai"``.
        shared: prefixes of chapters that exist once for every edition.
    """
    tag = "-" + edition.strip("_").replace("_", "-")
    cells = nb.get("cells", [])
    labels: set[str] = set()
    for cell in cells:
        fig = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if isinstance(fig, dict) and fig.get("name"):
            name = str(fig["name"])
            base = name[: -len(tag)] if name.endswith(tag) else name
            labels.add(base)
            fig["name"] = base + tag
        if cell.get("cell_type") == "markdown":
            labels.update(m.group(1) for m in _TARGET.finditer(_text(cell.get("source", "")))
                          if not m.group(1).endswith(tag))

    def fix(text: str) -> str:
        text = _TARGET.sub(lambda m: f"({m.group(1)}{tag})=" if m.group(1) in labels
                           else m.group(0), text)
        text = _REF.sub(lambda m: f"{{{m.group(1)}}}`{m.group(2) or ''}{m.group(3)}{tag}"
                        f"{m.group(4)}`" if m.group(3) in labels else m.group(0), text)
        return _DOC.sub(lambda m: m.group(0) if m.group(2).startswith(shared)
                        or m.group(2).endswith(edition) else
                        f"{{doc}}`{m.group(1) or ''}{m.group(2)}{edition}{m.group(3)}`", text)

    title = f" ({edition.strip('_').replace('_', ' ').capitalize()} edition)"
    titled = False
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            text = fix(_text(cell.get("source", "")))
            if not titled:  # the page title says which edition it belongs to
                head = re.search(r"^# (.+)$", text, re.M)
                if head:
                    titled = True
                    if not head.group(1).rstrip().endswith(title.strip()):
                        text = text[:head.end()] + title + text[head.end():]
            cell["source"] = text
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md is not None:
                out["data"]["text/markdown"] = fix(_text(md))
    return nb
