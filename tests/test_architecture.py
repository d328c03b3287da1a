"""The "you are here" picture: it draws every object the manifests make, highlights the right part in
each notebook, and stays a well-formed, legible SVG. Pure: no cluster needed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

import pytest

import jhtutorial
from jhtutorial import architecture
from jhtutorial.architecture import CONTAINERS, PARTS, you_are_here

SVG = "{http://www.w3.org/2000/svg}"
BY_ID = {part.id: part for part in PARTS}


def groups(svg: str) -> dict[str, str]:
    """Each drawn part's id and its class (here, made, later)."""
    root = ElementTree.fromstring(svg)
    found = [(g.get("id"), g.get("class")) for g in root.iter(f"{SVG}g") if g.get("id")]
    ids = [gid for gid, _ in found]
    assert len(ids) == len(set(ids)), "an id is drawn twice"
    return dict(found)


def test_every_object_of_the_manifests_has_its_place_in_the_picture() -> None:
    for step in jhtutorial.STEPS:
        for obj in step.objects():
            name = obj["metadata"]["name"]
            drawn = [part for part in PARTS if part.step == step.number and name in
                     re.findall(r"[\w-]+", f"{part.kind} {part.name} {part.detail}")]
            assert drawn, f"{obj['kind']}/{name} of step {step.key} is not in the picture"


def test_the_objects_the_hub_makes_at_login_are_drawn_as_notebook_07s() -> None:
    assert {part.name for part in PARTS if part.step == 7} == {"jupyter-admin", "claim-admin"}


@pytest.mark.parametrize("number", range(1, 7))
def test_a_step_notebook_highlights_exactly_what_its_step_makes(number: int) -> None:
    picture = you_are_here(number)
    expected = {part.id for part in PARTS if (CONTAINERS.get(part.id) and BY_ID[CONTAINERS[part.id]].step == number)
                or part.step == number}
    assert set(picture.highlighted) == expected and expected
    drawn = groups(picture.svg)
    assert {gid for gid, style in drawn.items() if style == "here" and not gid.startswith("chip-")} == expected
    assert drawn[f"chip-{number:02d}"] == "here"
    # earlier parts plain, later parts faint: the picture shows progress
    for part in PARTS:
        if part.id not in CONTAINERS and part.step not in (0, number):
            assert drawn[part.id] == ("made" if part.step < number else "later"), part.id


def test_the_introduction_singles_nothing_out_and_the_clean_up_removes_all_the_workbook_made() -> None:
    assert you_are_here("00-introduction").highlighted == ()
    drawn = groups(you_are_here(0).svg)
    assert {style for gid, style in drawn.items() if not gid.startswith("chip-")} == {"made"}
    assert drawn["chip-00"] == "here"
    removed = set(you_are_here("08-cleanup").highlighted)
    assert removed == {part.id for part in PARTS if part.step > 0 or part.id in CONTAINERS}
    assert "api-server" not in removed and "browser" not in removed


def test_the_login_notebook_highlights_the_browser_the_user_pod_and_its_claim() -> None:
    assert set(you_are_here("07-login-and-spawn").highlighted) == {"browser", "pod-user", "pvc-claim-admin"}


def test_the_text_says_where_you_are_for_a_reader_without_svg() -> None:
    picture = you_are_here("04-pvc")
    bundle = picture._repr_mimebundle_()
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    assert bundle["text/plain"].splitlines()[:2] == [
        "you are here: 04 of 08, Storage for the hub's database (PersistentVolumeClaim)",
        "  this notebook makes: PVC hub-db-dir"]
    assert "01 ServiceAccounts, Role, RoleBinding" in str(picture)
    assert str(you_are_here(5)).count("Service ") == 4  # all four Services named


@pytest.mark.parametrize("bad", ["09", "x", "", 12, "-1"])
def test_an_unknown_notebook_is_a_clear_error(bad: object) -> None:
    with pytest.raises(jhtutorial.UnknownStep) as caught:
        you_are_here(bad)  # type: ignore[arg-type]
    assert "00 to 08" in caught.value.fix


def text_width(text: str, size: float) -> float:
    """A generous estimate of a sans-serif line's width (bold included)."""
    return len(text) * size * 0.56


def test_labels_fit_their_boxes_and_boxes_do_not_overlap() -> None:
    for part in PARTS:
        for text, size in ((part.kind, 10.5), (part.name, 13), (part.detail, 10.5)):
            assert text_width(text, size) <= part.width - 4, (part.id, text)
    boxes = [part for part in PARTS if part.id not in CONTAINERS]
    for index, a in enumerate(boxes):
        assert 0 <= a.x and a.x + a.width <= architecture.WIDTH and a.y + a.height <= architecture.HEIGHT - 30
        for b in boxes[index + 1:]:
            apart = (a.x + a.width <= b.x or b.x + b.width <= a.x or a.y + a.height <= b.y or b.y + b.height <= a.y)
            assert apart, (a.id, b.id)
    for container, pod in CONTAINERS.items():
        inner, outer = BY_ID[container], BY_ID[pod]
        assert outer.x < inner.x and inner.x + inner.width < outer.x + outer.width
        assert outer.y < inner.y and inner.y + inner.height < outer.y + outer.height


def test_the_drawing_is_the_same_every_time() -> None:
    """Committed notebook outputs hold it, and nbval compares them."""
    assert you_are_here(3).svg == you_are_here("03-secret").svg
