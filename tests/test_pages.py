"""The runner's post-processing of executed chapters (aerialseg.pages)."""

from __future__ import annotations

import nbformat

from aerialseg import pages
from aerialseg.paths import repo_root
from aerialseg.plots import FIGURE_KEY


def _png(caption=None, name=None):
    meta = {"image/png": {"width": 700}}
    if caption:
        meta[FIGURE_KEY] = {"caption": caption, "alt": f"alt of {caption}",
                            **({"name": name} if name else {})}
    return nbformat.v4.new_output("display_data", data={"image/png": "iVBOR", "text/plain": "x"},
                                  metadata=meta)


def _stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def notebook():
    nb = nbformat.v4.new_notebook()
    cells = [
        nbformat.v4.new_code_cell("profile = 'default'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("show()", outputs=[_png("One.", "fcn-one")]),
        nbformat.v4.new_code_cell("loop()", outputs=[_stream("before\n"), _png("Two."),
                                                     _stream("between\n"), _png("Three.")]),
        nbformat.v4.new_code_cell("plt.show()", outputs=[_png()]),
        nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/html": '<p><span class="aerialseg-table-number">'
                                                 "</span>Caption</p>", "text/plain": "t"},
            execution_count=1)]),
        nbformat.v4.new_code_cell("print(path)", outputs=[_stream(
            f"results written to {repo_root()}/results/x.nc\n")]),
        nbformat.v4.new_code_cell("summary()", metadata={"tags": ["summary"]}),
    ]
    nb.cells = cells
    nb.metadata["papermill"] = {"input_path": "/tmp/aerialseg_nb_x/03_fcn_mfb.ipynb",
                                "output_path": "/work/x/book/chapters/03_fcn_mfb.ipynb"}
    return nb


def test_tags():
    out = pages.postprocess(notebook(), name="03_fcn_mfb")
    tags = [c["metadata"].get("tags", []) for c in out["cells"]]
    assert "hide-input" in tags[0] and "parameters" in tags[0]
    assert "remove-cell" in tags[1]
    assert "remove-input" in tags[-1] and "summary" in tags[-1]


def test_figures_become_numbered_captioned_cells():
    out = pages.postprocess(notebook(), name="03_fcn_mfb")
    figs = [c for c in out["cells"] if "mystnb" in c["metadata"]]
    assert [f["metadata"]["mystnb"]["figure"]["caption"] for f in figs] == ["One.", "Two.",
                                                                           "Three."]
    assert figs[0]["source"] == "show()"  # a cell with one figure keeps its input
    assert figs[0]["metadata"]["mystnb"]["figure"]["name"] == "fcn-one"
    assert figs[1]["metadata"]["mystnb"]["figure"]["name"] == "fig-03-fcn-mfb-2"
    assert figs[1]["metadata"]["mystnb"]["image"]["alt"] == "alt of Two."
    assert all(FIGURE_KEY not in o.get("metadata", {}) for c in figs for o in c["outputs"])
    # the loop cell: its input with "before", then figure, "between", figure, in order
    i = [c["source"] for c in out["cells"]].index("loop()")
    seq = out["cells"][i:i + 4]
    assert [o.get("text", "fig") for c in seq for o in c["outputs"]] == [
        "before\n", "fig", "between\n", "fig"]
    assert all("remove-input" in c["metadata"]["tags"] and c["source"] for c in seq[1:])
    assert len({c["id"] for c in out["cells"]}) == len(out["cells"])
    nbformat.validate(nbformat.from_dict(out))


def test_tables_numbered_paths_scrubbed():
    out = pages.postprocess(notebook(), name="03_fcn_mfb")
    html = [c for c in out["cells"] if c["source"] == "table"][0]["outputs"][0]["data"]
    assert '<span class="aerialseg-table-number">Table 3.1</span>' in html["text/html"]
    text = [c for c in out["cells"] if c["source"] == "print(path)"][0]["outputs"][0]["text"]
    assert text == "results written to results/x.nc\n"
    assert out["metadata"]["papermill"]["input_path"] == "03_fcn_mfb.ipynb"


def test_postprocess_file_roundtrip(tmp_path):
    path = tmp_path / "05_ensembles.ipynb"
    nbformat.write(notebook(), path)
    pages.postprocess_file(path)
    nb = nbformat.read(path, as_version=4)
    assert any("remove-cell" in c.metadata.get("tags", []) for c in nb.cells)
    assert "Table 5.1" in "".join(str(c.outputs) for c in nb.cells if c.cell_type == "code")
    assert pages.chapter_number("10_comparison") == "10"


def test_another_editions_page_gets_its_own_labels_and_links(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# FCN and MFB\n\n(fcn-method)=\n## Method\n\nSee "
                                      "{numref}`fcn-one`, {ref}`fcn-method`, "
                                      "{ref}`protocol-ece`, {doc}`01_data`, "
                                      "{doc}`the comparison <10_comparison>` and "
                                      "{doc}`../protocol`."),
        nbformat.v4.new_code_cell("show()", outputs=[_png("One.", "fcn-one")]),
        nbformat.v4.new_code_cell("md()", outputs=[nbformat.v4.new_output(
            "display_data", data={"text/markdown": "As {numref}`fcn-one` shows.",
                                  "text/plain": "x"})]),
    ]
    path = tmp_path / "03_fcn_mfb__dubai.ipynb"
    nbformat.write(nb, path)
    pages.postprocess_file(path)
    out = nbformat.read(path, as_version=4)
    md = out.cells[0].source
    assert md.startswith("# FCN and MFB (Dubai edition)\n")
    assert "(fcn-method-dubai)=" in md and "{ref}`fcn-method-dubai`" in md
    assert "{numref}`fcn-one-dubai`" in md and "{ref}`protocol-ece`" in md
    assert "{doc}`01_data__dubai`" in md
    assert "{doc}`the comparison <10_comparison>`" in md  # one comparison for every edition
    assert "{doc}`../protocol`" in md
    assert out.cells[1].metadata["mystnb"]["figure"]["name"] == "fcn-one-dubai"
    assert out.cells[2].outputs[0]["data"]["text/markdown"] == "As {numref}`fcn-one-dubai` shows."
    again = pages.retarget_edition(nbformat.from_dict(out), "__dubai")  # idempotent
    assert again.cells[0].source == md
    assert again.cells[1].metadata["mystnb"]["figure"]["name"] == "fcn-one-dubai"
    # the main edition's page is left alone
    main = tmp_path / "03_fcn_mfb.ipynb"
    nbformat.write(nb, main)
    pages.postprocess_file(main)
    assert nbformat.read(main, as_version=4).cells[0].source == nb.cells[0].source
