"""How much a learner reads: the words of the notebooks' markdown, the folded parts (``<details>``) apart.

Folded parts (answers, "more" sections, instructor notes) are read only by whoever unfolds them; the rest is
the lesson's reading time, at about 200 words a minute.

    $ .venv/bin/python -m tests.lesson_words
    00-introduction      980 read   420 folded
    ...
    total               7900 read  2600 folded  (budget 8000 read)
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BUDGET = 8000  # words read across 00-08, folded parts apart
FOLDED = re.compile(r"<details\b.*?</details>", re.S)


def words(text: str) -> int:
    return len(text.split())


def markdown_words(notebook: Path) -> tuple[int, int]:
    """(words read, words folded) of one notebook's markdown cells."""
    read = folded = 0
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        hidden = FOLDED.findall(cell.source)
        folded += sum(words(part) for part in hidden)
        read += words(FOLDED.sub(" ", cell.source))
    return read, folded


def series() -> list[Path]:
    return sorted(NOTEBOOKS.glob("0[0-8]-*.ipynb"))


def main() -> None:
    total_read = total_folded = 0
    for notebook in series():
        read, folded = markdown_words(notebook)
        total_read, total_folded = total_read + read, total_folded + folded
        print(f"{notebook.stem:<20} {read:5d} read {folded:5d} folded")
    print(f"{'total':<20} {total_read:5d} read {total_folded:5d} folded  (budget {BUDGET} read)")


if __name__ == "__main__":
    main()
