"""The "you are here" picture: the workbook's architecture with the current notebook's part highlighted.

One drawing for all notebooks, generated here as SVG (no image files, nothing fetched), so the picture and
the manifests cannot drift apart silently: tests/test_architecture.py checks that every object the manifests
create has its place in it.

    >>> from jhtutorial.architecture import you_are_here
    >>> picture = you_are_here("04-pvc")
    >>> print(picture)
    you are here: 04 of 08, Storage for the hub's database (PersistentVolumeClaim)
      this notebook makes: PVC hub-db-dir
      made before: 01 ServiceAccounts, Role, RoleBinding · 02 ConfigMaps · 03 Secret
    >>> picture.highlighted
    ('pvc-hub-db-dir',)
    >>> picture.svg.startswith("<svg")
    True

In a notebook, ``display(picture)`` draws the SVG (JupyterLab, nbconvert, GitHub) and falls back to the
text above where SVG is not shown. ``nb.begin`` shows it under the connection lines of every notebook.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from .steps import STEPS, get_step

# --- what is drawn ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One box of the drawing: a Kubernetes object (or a container, the browser, the API server).

    ``step`` is the notebook that makes it (0: there before the workbook starts); ``inside`` names the pod
    box a container is drawn in (it takes that pod's step)."""

    id: str
    kind: str  # the first, small line: "Service", "ConfigMap", ... ("" for the browser)
    name: str  # the second line: the object's name as kubectl shows it
    step: int
    x: int
    y: int
    width: int
    height: int
    shape: str = "box"  # box, pill (Services), pod (a frame with a title), drum (volumes), person
    detail: str = ""    # a third line, smaller: a port, what runs there

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}".strip()

    def anchor(self, side: str, at: float = 0.5) -> tuple[float, float]:
        """A point on one side (n, s, e, w), ``at`` of the way along it (0.5: the middle)."""
        x, y, w, h = self.x, self.y, self.width, self.height
        return {"n": (x + w * at, y), "s": (x + w * at, y + h), "e": (x + w, y + h * at),
                "w": (x, y + h * at)}[side]


@dataclass(frozen=True)
class Link:
    """A line between two parts. ``uses``: a dotted line (a pod mounts or refers to the object);
    otherwise an arrow a request travels along. ``step``: the notebook that makes it real."""

    source: str
    source_side: str
    target: str
    target_side: str
    step: int
    label: str = ""
    uses: bool = False
    login: bool = False  # part of the way a login travels (highlighted in 07)
    source_at: float = 0.5  # where along its side the line leaves (0: left or top end, 1: right or bottom)
    target_at: float = 0.5
    label_offset: tuple[int, int] = (0, -5)  # from the line's middle (a vertical line: its label to the right)


WIDTH, HEIGHT = 1000, 462  # the drawing's own units
SHOWN_WIDTH = 860  # pixels on screen: fits a notebook's output area beside the prompt
TOP = 62  # below the strip of notebooks

PARTS: tuple[Part, ...] = (
    Part("browser", "", "browser", 0, 10, TOP + 105, 76, 44, shape="person"),
    Part("svc-proxy-public", "Service (NodePort)", "proxy-public", 5, 104, TOP + 100, 124, 54, "pill", ":80"),
    Part("svc-proxy-http", "Service", "proxy-http", 5, 104, TOP + 205, 124, 54, "pill", ":8000, unused"),
    Part("pod-proxy", "Pod (Deployment)", "proxy", 6, 248, TOP + 40, 240, 232, "pod"),
    Part("container-nginx", "container", "nginx", 6, 268, TOP + 95, 200, 50, detail=":8080, routes all to CHP"),
    Part("container-chp", "container", "configurable-http-proxy", 6, 268, TOP + 195, 200, 54,
         detail=":8000, its API :8001"),
    Part("svc-proxy-api", "Service", "proxy-api", 5, 512, TOP + 5, 124, 54, "pill", ":8001 + token"),
    Part("svc-hub", "Service", "hub", 5, 512, TOP + 105, 124, 54, "pill", ":8081"),
    Part("rbac-hub", "ServiceAccount, Role,", "RoleBinding hub", 1, 664, TOP + 2, 176, 58,
         detail="and ServiceAccount proxy"),
    Part("pod-hub", "Pod (Deployment)", "hub", 6, 664, TOP + 100, 176, 74, "pod", "JupyterHub + KubeSpawner"),
    Part("api-server", "Kubernetes", "API server", 0, 866, TOP + 2, 124, 74, detail="RBAC decides"),
    Part("pod-user", "Pod", "jupyter-admin", 7, 866, TOP + 190, 124, 74, "pod", "JupyterLab"),
    Part("cm-nginx-routes", "ConfigMap", "nginx-routes", 2, 240, TOP + 300, 116, 50),
    Part("cm-nginx-proxy-config", "ConfigMap", "nginx-proxy-config", 2, 364, TOP + 300, 136, 50),
    Part("secret-hub-secret", "Secret", "hub-secret", 3, 512, TOP + 300, 124, 50, detail="proxy.token"),
    Part("cm-hub-config", "ConfigMap", "hub-config", 2, 664, TOP + 300, 84, 50),
    Part("pvc-hub-db-dir", "PVC", "hub-db-dir", 4, 756, TOP + 294, 84, 62, "drum", "database"),
    Part("pvc-claim-admin", "PVC", "claim-admin", 7, 866, TOP + 294, 124, 62, "drum", "admin's home"),
)
CONTAINERS = {"container-nginx": "pod-proxy", "container-chp": "pod-proxy"}

LINKS: tuple[Link, ...] = (
    Link("browser", "e", "svc-proxy-public", "w", 7, login=True),
    Link("svc-proxy-public", "e", "container-nginx", "w", 6, login=True),
    Link("container-nginx", "s", "container-chp", "n", 6, "127.0.0.1:8000", login=True),
    Link("svc-proxy-http", "e", "container-chp", "w", 6),
    Link("container-chp", "e", "svc-hub", "w", 6, "/hub/…", login=True, source_at=0.2, label_offset=(26, 10)),
    Link("svc-hub", "e", "pod-hub", "w", 6, login=True, target_at=0.4),
    Link("container-chp", "e", "pod-user", "w", 7, "/user/admin/…", login=True, source_at=0.6),
    Link("pod-hub", "n", "svc-proxy-api", "e", 6, "add route", login=True, source_at=0.15,
         label_offset=(-26, 14)),
    Link("svc-proxy-api", "w", "container-chp", "n", 6, source_at=0.5, target_at=0.9),
    Link("pod-hub", "e", "api-server", "s", 6, "create", login=True, source_at=0.3, target_at=0.3),
    Link("api-server", "s", "pod-user", "n", 7, "pod + PVC", login=True, source_at=0.6, target_at=0.6),
    Link("pod-user", "s", "pvc-claim-admin", "n", 7, uses=True),
    Link("rbac-hub", "e", "api-server", "w", 1, uses=True),
    Link("pod-hub", "n", "rbac-hub", "s", 1, uses=True, source_at=0.6, target_at=0.6),
    Link("cm-nginx-routes", "n", "pod-proxy", "s", 2, uses=True, target_at=0.25),
    Link("cm-nginx-proxy-config", "n", "pod-proxy", "s", 2, uses=True, target_at=0.75),
    Link("secret-hub-secret", "n", "pod-proxy", "e", 3, uses=True, source_at=0.3, target_at=0.85),
    Link("secret-hub-secret", "n", "pod-hub", "s", 3, uses=True, source_at=0.7, target_at=0.15),
    Link("cm-hub-config", "n", "pod-hub", "s", 2, uses=True, target_at=0.24),
    Link("pvc-hub-db-dir", "n", "pod-hub", "s", 4, uses=True, target_at=0.76),
)

# the strip at the top: one chip per notebook
SHORT_NAMES = ("introduction", "RBAC", "ConfigMaps", "Secret", "PVC", "Services", "Deployments",
               "login", "clean-up")
LAST = len(SHORT_NAMES) - 1

# what each notebook is about, in the picture's terms (besides the parts whose step it is)
_ALSO = {7: ("browser",)}

STYLES = {  # fill, stroke, text colour, stroke width, dash
    "here": ("#ffe7a8", "#c2410c", "#3b1d04", 3.0, ""),
    "made": ("#e4ecf7", "#4a6b94", "#1d2b3c", 1.4, ""),
    "later": ("#f7f7f7", "#b5b5b5", "#9a9a9a", 1.2, "5 4"),
}


# --- which parts a notebook highlights ----------------------------------------------------------------


def notebook_number(notebook: str | int) -> int:
    """``"04-pvc"``, ``"04"``, ``4`` -> 4; 0 to 8."""
    text = str(notebook).strip()
    digits = text[:2] if text[:2].isdigit() else text
    if not digits.isdigit() or not 0 <= int(digits) <= LAST:
        from .errors import UnknownStep

        raise UnknownStep(f"there is no notebook {notebook!r}",
                          fix=f"use a notebook's number or key, 00 to {LAST:02d} (for example 04-pvc)")
    return int(digits)


def _style(part_step: int, number: int) -> str:
    if number == 0:
        return "made"        # the overview: the whole picture, nothing singled out
    if number == LAST:
        return "here" if part_step > 0 else "made"   # the clean-up removes everything the workbook made
    if part_step == number:
        return "here"
    return "made" if part_step < number else "later"


def _part_step(part: Part) -> int:
    return next(p.step for p in PARTS if p.id == CONTAINERS[part.id]) if part.id in CONTAINERS else part.step


def styles_for(notebook: str | int) -> dict[str, str]:
    """Each part's style in this notebook's picture: here, made (earlier, or always there) or later."""
    number = notebook_number(notebook)
    styles = {part.id: _style(_part_step(part), number) for part in PARTS}
    for extra in _ALSO.get(number, ()):
        styles[extra] = "here"
    return styles


def _title(number: int) -> str:
    return "Introduction: the whole picture" if number == 0 else get_step(number).title


# --- the picture ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Picture:
    """The architecture with one notebook's part highlighted: ``svg`` to draw, ``str()`` to read."""

    notebook: int
    svg: str
    highlighted: tuple[str, ...]
    text: str

    def __str__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"image/svg+xml": self.svg, "text/plain": self.text}


def you_are_here(notebook: str | int) -> Picture:
    """The picture for one notebook (``"04-pvc"``, ``4``): its parts highlighted, earlier ones plain,
    later ones faint and dashed. 00 shows the whole picture; 08 highlights everything it removes."""
    number = notebook_number(notebook)
    styles = styles_for(number)
    highlighted = tuple(part.id for part in PARTS if styles[part.id] == "here")
    return Picture(number, _svg(number, styles), highlighted, _text(number, styles))


def _text(number: int, styles: dict[str, str]) -> str:
    head = f"you are here: {number:02d} of {LAST:02d}, {_title(number)}"
    if number == 0:
        return head + "\n  notebooks 01 to 08 build it, one kind of object at a time"
    if number == LAST:
        return head + "\n  removes everything 01 to 07 made; the namespace and the API server stay"
    made_here = [part.label for part in PARTS if styles[part.id] == "here" and part.id not in CONTAINERS]
    lines = [head, "  this notebook " + ("uses: " if number == 7 else "makes: ") + ", ".join(made_here)]
    earlier = [f"{step.number:02d} {_step_objects(step.number)}" for step in STEPS if 0 < step.number < number]
    if earlier:
        lines.append("  made before: " + " · ".join(earlier))
    return "\n".join(lines)


def _step_objects(number: int) -> str:
    kinds = {1: "ServiceAccounts, Role, RoleBinding", 2: "ConfigMaps", 3: "Secret", 4: "PVC", 5: "Services",
             6: "Deployments", 7: "a user's pod and PVC"}
    return kinds[number]


def _svg(number: int, styles: dict[str, str]) -> str:
    by_id = {part.id: part for part in PARTS}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{SHOWN_WIDTH}" '
           f'height="{round(HEIGHT * SHOWN_WIDTH / WIDTH)}" font-family="Helvetica, Arial, sans-serif" role="img">',
           f"<title>{escape(_text(number, styles))}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker>'
           '<marker id="arrow-here" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{STYLES["here"][1]}"/></marker>'
           '<marker id="arrow-made" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{STYLES["made"][1]}"/></marker>'
           '<marker id="arrow-later" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
           f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{STYLES["later"][1]}"/></marker>'
           "</defs>",
           f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>']
    out.extend(_strip(number))
    # pods first (their frames), then lines, then the boxes on top of the lines
    for part in PARTS:
        if part.shape == "pod" and part.id not in CONTAINERS:
            out.extend(_draw(part, styles[part.id]))
    for link in LINKS:
        out.extend(_line(link, by_id, number, styles))
    for part in PARTS:
        if part.shape != "pod":
            out.extend(_draw(part, styles[part.id]))
    out.extend(_legend(number))
    out.append("</svg>")
    return "\n".join(out)


def _strip(number: int) -> list[str]:
    """The notebooks as a row of chips, the current one filled."""
    chip, gap, x0, y0 = 104, 6, 10, 12
    out = []
    for index, short in enumerate(SHORT_NAMES):
        style = "here" if index == number else ("made" if index < number else "later")
        fill, stroke, colour, width, _ = STYLES[style]
        x = x0 + index * (chip + gap)
        weight = ' font-weight="bold"' if style == "here" else ""
        out.append(f'<g id="chip-{index:02d}" class="{style}"><rect x="{x}" y="{y0}" width="{chip}" height="30" '
                   f'rx="15" fill="{fill}" stroke="{stroke}" stroke-width="{min(width, 2)}"/>'
                   f'<text x="{x + chip / 2}" y="{y0 + 20}" font-size="12" text-anchor="middle" '
                   f'fill="{colour}"{weight}>{index:02d} {escape(short)}</text></g>')
    return out


def _draw(part: Part, style: str) -> list[str]:
    fill, stroke, colour, width, dash = STYLES[style]
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    x, y, w, h = part.x, part.y, part.width, part.height
    weight = ' font-weight="bold"' if style == "here" else ""
    out = [f'<g id="{part.id}" class="{style}">']
    if part.shape == "pill":
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{h / 2}" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{width}"{dashed}/>')
    elif part.shape == "drum":
        out.append(f'<path d="M{x},{y + 8} a{w / 2},8 0 0 0 {w},0 v{h - 16} a{w / 2},8 0 0 1 {-w},0 z" '
                   f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dashed}/>')
        out.append(f'<ellipse cx="{x + w / 2}" cy="{y + 8}" rx="{w / 2}" ry="8" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{width}"{dashed}/>')
    elif part.shape == "person":
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{width}"{dashed}/>')
    else:
        radius = 10 if part.shape == "pod" else 4
        out.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="{radius}" fill="{fill}" '
                   f'stroke="{stroke}" stroke-width="{width}"{dashed}/>')
    lines = [(part.kind, 10.5, ""), (part.name, 13, weight), (part.detail, 10.5, "")]
    lines = [line for line in lines if line[0]]
    if part.id in CONTAINERS.values():  # a frame around containers: its title at the top
        first_y = y + 18
    else:
        first_y = y + h / 2 - (len(lines) - 1) * 7.5 + 4 + (7 if part.shape == "drum" else 0)
    for index, (text, size, bold) in enumerate(lines):
        out.append(f'<text x="{x + w / 2}" y="{first_y + index * 15}" font-size="{size}" text-anchor="middle" '
                   f'fill="{colour}"{bold}>{escape(text)}</text>')
    out.append("</g>")
    return out


def _line(link: Link, by_id: dict[str, Part], number: int, styles: dict[str, str]) -> list[str]:
    ends = (styles[link.source], styles[link.target])
    if (number == 7 and link.login) or (link.step == number and number not in (0, LAST)):
        style = "here"
    elif "later" in ends or (0 < number < LAST and link.step > number):
        style = "later"
    else:
        style = "made"
    _, stroke, colour, width, _ = STYLES[style]
    x1, y1 = by_id[link.source].anchor(link.source_side, link.source_at)
    x2, y2 = by_id[link.target].anchor(link.target_side, link.target_at)
    dash = ' stroke-dasharray="2 4"' if link.uses else ""
    head = "" if link.uses else f' marker-end="url(#arrow-{style})"'
    out = [f'<line class="link {style}" x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{stroke}" '
           f'stroke-width="{min(width, 2.2)}"{dash}{head}/>']
    if link.label:
        vertical = x1 == x2
        dx, dy = (6, 4) if vertical else link.label_offset
        out.append(f'<text x="{(x1 + x2) / 2 + dx}" y="{(y1 + y2) / 2 + dy}" font-size="10.5" '
                   f'text-anchor="{"start" if vertical else "middle"}" fill="{colour}">{escape(link.label)}</text>')
    return out


def _legend(number: int) -> list[str]:
    y = HEIGHT - 22
    if number == 0:
        entries = [("made", "what notebooks 01 to 07 make")]
    elif number == LAST:
        entries = [("here", "removed by this notebook"), ("made", "stays")]
    else:
        entries = [("here", "this notebook"), ("made", "made earlier"), ("later", "comes later")]
    out = []
    x = 10
    for style, words in entries:
        fill, stroke, _, width, dash = STYLES[style]
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<rect x="{x}" y="{y - 11}" width="22" height="14" rx="3" fill="{fill}" stroke="{stroke}" '
                   f'stroke-width="{min(width, 2)}"{dashed}/>'
                   f'<text x="{x + 28}" y="{y}" font-size="11" fill="#333333">{escape(words)}</text>')
        x += 40 + 7 * len(words)
    out.append(f'<text x="{x + 10}" y="{y}" font-size="11" fill="#555555">arrows: requests · dotted: mounts '
               "and references</text>")
    return out
