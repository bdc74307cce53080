"""The companion notebooks run top to bottom in a real Jupyter kernel and show their
figures inline, so that they cannot rot (nbclient executes them as a user would)."""

from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow  # ~10 s each: a kernel start and the chapter's small runs


def test_the_notebooks_are_numbered_01_02_and_so_on():
    # at least the lecture's three; later ones (05: matrix optimizers, …) follow on
    assert len(NOTEBOOKS) >= 3
    assert [p.name[:3] for p in NOTEBOOKS] == [f"{i:02d}-" for i in range(1, len(NOTEBOOKS) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_shows_its_figures(path):
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    # Stored without outputs (small diffs); executed here in the notebook's own folder.
    assert all(not c.get("outputs") for c in book.cells if c.cell_type == "code")
    NotebookClient(
        book, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "figures must show inline"
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "Traceback" not in text
