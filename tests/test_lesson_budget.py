"""What a lesson asks of a room: at most 8,000 words to read across 00-08 (folded parts apart), and every
notebook ending by stopping its watches and saying how to shut its kernel down."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

import jhtutorial
from jhtutorial import notebook as nb
from jhtutorial.liveview import LiveView, running_views
from tests.lesson_words import BUDGET, markdown_words, series

def test_the_series_reads_in_at_most_8000_words_with_the_depth_folded() -> None:
    counts = {notebook.stem: markdown_words(notebook) for notebook in series()}
    assert len(counts) == 9
    read = sum(r for r, _ in counts.values())
    assert read <= BUDGET, {name: r for name, (r, _) in counts.items()}
    assert all(folded > 0 for _, folded in counts.values())  # each keeps its depth, folded


def test_folded_parts_do_not_count_and_visible_words_do() -> None:
    import tests.lesson_words as lesson_words

    text = "one two <details><summary>More</summary>\n\nthree four five\n</details> six"
    assert lesson_words.words(lesson_words.FOLDED.sub(" ", text)) == 3


@pytest.mark.parametrize("name", [notebook.stem for notebook in series()])
def test_every_notebook_ends_by_stopping_its_watches(name: str) -> None:
    cells = nbformat.read(Path(series()[0].parent, f"{name}.ipynb"), as_version=4).cells
    last = [cell for cell in cells if cell.cell_type == "code"][-1]
    # the last of the series says so instead of sending the learner on to the next
    ending = "nb.end(last=True)" if name == series()[-1].stem else "nb.end()"
    assert last.source.splitlines()[-1].startswith(ending), last.source


def test_end_stops_the_live_views_still_running_and_says_how_to_shut_the_kernel_down(
    kubeconfig: Path, namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    conn = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        view = LiveView(conn, interval=0.3).start()
        assert view in running_views()
        nb.end()
        assert view not in running_views()
        printed = capsys.readouterr().out
        assert "stopped 1 live view(s)" in printed and "Kernel > Shut Down Kernel" in printed
        nb.end()
        ended = capsys.readouterr().out
        assert "no watch left running" in ended and "go on with the next" in ended
        nb.end(last=True)
        ended = capsys.readouterr().out
        assert "last notebook of the series" in ended and "go on with the next" not in ended
    finally:
        conn.close()
