"""Every numbered notebook is committed clean and can be driven by papermill."""
import nbformat
import pytest

from kernels_lib.publish import notebooks

NOTEBOOKS = notebooks.list_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean_with_a_readable_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be stripped"
    declared = notebooks.declared_parameters(path)        # refuses a line papermill cannot read
    assert "results_dir" in declared, "a notebook must be told where to record its results"
    if not path.stem.startswith("01_"):                   # 01 writes a database, not figures
        assert "output_dir" in declared
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.stem[:2]} · ")
    # markdown renders as text, not as a heading per line (a "# " prefix on every line would)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and len(cell.source.splitlines()) > 2:
            assert not all(line.startswith("#") for line in cell.source.splitlines()), cell.source[:80]
