"""Drive the workbook the way a learner does: `jhtutorial lab`, then JupyterLab in Chromium.

    lab = start_lab(namespace="alice", kubeconfig=path, workdir=tmp, log=tmp / "lab.log")
    page = browser.new_page()
    log_in(page, lab)                       # through JupyterLab's login form: no token in any URL
    open_folder(page, "notebooks")          # the working copy: notebooks/, manifests/, docs/
    notebook = open_notebook(page, "06-deployments.ipynb")
    notebook.run_all()                      # Run > Run All Cells, then wait for every cell to finish
    assert notebook.problems() == []        # no error output, no widget that failed to draw
    lab.stop()

Everything waits on what appears on the page (prompts, outputs, widgets), never on fixed sleeps.
Debian's `chromium` is used as it is installed: no browser is downloaded.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: where the browser is when it is not at a usual place (an absolute path)
CHROMIUM_ENV = "JHTUTORIAL_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
#: headless on a machine without a GPU or a desktop session, and no calls home
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"]

#: JupyterLab settings for the test's own settings folder (never the learner's): every cell drawn (JupyterLab 4
#: otherwise draws only the cells in sight). The news pop-up that could cover the page `jhtutorial lab` itself
#: answers "no" (jhtutorial.workbook.LAB_SETTING_DEFAULTS), as for a learner.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # a terminal draws its text on a canvas; its screen-reader mode also writes each row into the page as text
    "@jupyterlab/terminal-extension/plugin": {"screenReaderMode": True},
}

STDERR = "application/vnd.jupyter.stderr"  # JupyterLab draws error outputs and stderr with this type


def in_ci() -> bool:
    """CI machines set CI=true; there a missing browser is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def find_chromium() -> Path | None:
    """Debian's chromium (or the one ``$JHTUTORIAL_CHROMIUM`` names), None if there is none."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return Path(named) if Path(named).is_file() and os.access(named, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "browser tests: Playwright is not installed (pip install -e '.[test]')"
    if find_chromium() is None:
        return (f"browser tests: no chromium found (Debian/Ubuntu: apt-get install chromium; or set {CHROMIUM_ENV} "
                "to a Chromium binary)")
    return None


# --- JupyterLab, started as a learner starts it ------------------------------------------------------


@dataclass
class Lab:
    """A running `jhtutorial lab`. ``url`` carries no token: the browser logs in through the form."""

    process: subprocess.Popen[str]
    url: str
    token: str
    log: Path
    _drain: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop JupyterLab and its kernels (its own process group), then wait for them."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        with _suppress_process_lookup():
            os.killpg(self.process.pid, signal.SIGKILL)  # kernels that outlived the server
        self._drain.join(timeout)


class _suppress_process_lookup:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, *rest: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


def write_lab_settings(folder: Path) -> Path:
    """The test's own JupyterLab user-settings folder (``$JUPYTERLAB_SETTINGS_DIR``)."""
    import json

    for plugin, values in LAB_SETTINGS.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=2))
    return folder


def start_lab(*, namespace: str, kubeconfig: Path, workdir: Path, log: Path, timeout: float = 120.0) -> Lab:
    """`jhtutorial lab -n NAMESPACE --workdir WORKDIR/workbook` on a free loopback port with a fresh token,
    as a learner runs it (the command makes the working copy: notebooks without outputs, manifests/ beside).

    JupyterLab's settings, workspaces and runtime files live under ``workdir`` (not the learner's);
    its output goes to ``log`` with the token blanked out.
    """
    token = secrets.token_hex(24)
    env = dict(os.environ)
    env.update({
        "KUBECONFIG": str(kubeconfig),
        "JUPYTER_TOKEN": token,  # JupyterLab then prints its URL with `token=...`, not the token
        "JUPYTERLAB_SETTINGS_DIR": str(write_lab_settings(workdir / "lab-settings")),
        "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "lab-workspaces"),
        "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
    })
    for name in ("JHTUTORIAL_NAMESPACE", "JHTUTORIAL_CONTEXT"):
        env.pop(name, None)
    command = [str(Path(sys.executable).parent / "jhtutorial"), "lab", "--namespace", namespace,
               "--workdir", str(workdir / "workbook"),
               "--no-browser", "--ip=127.0.0.1", "--port=0", "--ServerApp.port_retries=0"]
    process = subprocess.Popen(command, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout is not None
    found = threading.Event()
    url: list[str] = []

    def drain() -> None:
        # read every line for the whole life of the server, so its pipe never fills
        with log.open("w") as out:
            for line in process.stdout:  # type: ignore[union-attr]
                out.write(line.replace(token, "<token>"))
                out.flush()
                match = re.search(r"(http://127\.0\.0\.1:\d+/)lab", line)
                if match and not url:
                    url.append(match.group(1))
                    found.set()
        found.set()

    reader = threading.Thread(target=drain, name="jupyterlab-log", daemon=True)
    reader.start()
    lab = Lab(process, "", token, log, reader)
    if not found.wait(timeout) or not url:
        lab.stop()
        ended = f"exited with {process.returncode}" if process.returncode is not None else \
            f"did not start within {timeout:.0f} s"
        raise RuntimeError(f"`jhtutorial lab` {ended}; its output: {log}")
    lab.url = url[0]
    return lab


# --- the page --------------------------------------------------------------------------------------


def log_in(page: Any, lab: Lab) -> None:
    """Log in through JupyterLab's login form (the token never appears in a URL), land on the lab and wait
    until it knows its kernels (the launcher lists Python), so a notebook opened next starts its own."""
    page.goto(lab.url + "login?next=%2Flab")
    page.locator("#password_input").fill(lab.token)
    page.locator("#login_submit").click()
    page.locator(".jp-LauncherCard-label", has_text="Python 3").first.wait_for()
    assert lab.token not in page.url


def open_folder(page: Any, name: str) -> None:
    """Double-click a folder in the file browser and wait until it lists its files."""
    page.locator(".jp-DirListing-item",
                 has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))).dblclick()
    page.locator(".jp-BreadCrumbs", has_text=name).wait_for()


def menu(page: Any, top: str, item: str) -> None:
    """Click a menu bar entry, then one of its items (by their labels, as a learner does)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{re.escape(top)}$")).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def open_notebook(page: Any, name: str, artefacts: Path | None = None) -> Notebook:
    """Double-click the notebook in the file browser; wait until its kernel is connected and idle.

    The status bar says so ("Python 3 (ipykernel) | Idle"); the toolbar's indicator reads idle even
    before a kernel exists, and Run All with no kernel yet would ask which kernel to start."""
    page.locator(".jp-DirListing-item", has_text=name).dblclick()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=name)
    tab.wait_for()
    notebook = Notebook(page, name, f"#{tab.get_attribute('data-id')}", artefacts)
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"), has_not_text="No Kernel").wait_for()
    notebook.cells().first.wait_for()
    return notebook


@dataclass
class Terminal:
    """One open lab terminal tab (File > New > Terminal), typed into as a learner types."""

    page: Any
    selector: str  # CSS selector of its panel

    def type(self, line: str) -> None:
        """Click into the terminal and type ``line``, then Enter."""
        self.page.locator(f"{self.selector} .xterm").click()
        self.page.keyboard.type(line, delay=10)
        self.page.keyboard.press("Enter")

    def text(self) -> str:
        """What the terminal shows, row by row (its screen-reader rows; see LAB_SETTINGS)."""
        rows = self.page.locator(f"{self.selector} .xterm-accessibility-tree > div").all_inner_texts()
        return "\n".join(row.rstrip() for row in rows)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> str:
        """Wait until the terminal shows a line matching ``pattern`` (a regular expression); return the text."""
        script = """([selector, pattern]) => {
            const rows = document.querySelectorAll(selector + ' .xterm-accessibility-tree > div');
            const text = Array.from(rows).map(row => row.textContent).join('\\n');
            return new RegExp(pattern, 'm').test(text);
        }"""
        from playwright.sync_api import TimeoutError as PageTimeout

        try:
            self.page.wait_for_function(script, arg=[self.selector, pattern], timeout=timeout * 1000, polling=250)
        except PageTimeout:
            raise AssertionError(f"the terminal never showed {pattern!r}; it shows:\n{self.text()}") from None
        return self.text()

    def close(self) -> None:
        self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()


def open_terminal(page: Any) -> Terminal:
    """File > New > Terminal, and wait until its shell prompts."""
    page.locator(".lm-MenuBar-item", has_text=re.compile("^File$")).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile("^New$")).hover()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile("^Terminal$")).click()
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="Terminal")
    tab.wait_for()
    terminal = Terminal(page, f"#{tab.get_attribute('data-id')}")
    terminal.wait_for(r"[$#]\s*$")  # the shell's prompt
    return terminal


# JavaScript run in the page. A code cell's prompt reads [*]: while it is queued or running, [N]: once it ran;
# an exercise's answer cell has its input folded away, so it has no visible prompt to read.
_PROMPTS = """([selector, first, last]) =>
    Array.from(document.querySelectorAll(selector + ' .jp-Notebook .jp-Cell')).slice(first, last + 1)
        .filter(cell => cell.classList.contains('jp-CodeCell'))
        .map(cell => cell.querySelector('.jp-InputArea > .jp-InputPrompt'))
        .filter(prompt => prompt && prompt.offsetParent !== null)
        .map(prompt => prompt.textContent.trim())"""
_FINISHED = f"""([selector, first, last, stderr]) => {{
    const prompts = ({_PROMPTS})([selector, first, last]);
    if (prompts.some(text => text.includes('*'))) return false;                 // running or queued
    const status = document.querySelector('.jp-StatusBar-Widget');
    if (!status || !/\\| Idle/.test(status.textContent)) return false;           // the kernel is busy
    if (document.querySelector(selector + ` [data-mime-type="${{stderr}}"]`)) return true;  // stopped at an error
    return prompts.every(text => /^\\[\\d+\\]:$/.test(text));
}}"""


@dataclass
class Notebook:
    """One open notebook tab."""

    page: Any
    name: str
    selector: str  # CSS selector of its panel
    artefacts: Path | None = None  # where a screenshot of a timeout goes

    @property
    def panel(self) -> Any:
        return self.page.locator(self.selector)

    def cells(self) -> Any:
        return self.panel.locator(".jp-Notebook .jp-Cell")

    def index_of(self, source: str) -> int:
        """Position of the first cell whose source contains ``source``."""
        # one text per cell: a cell whose source is folded away (an exercise's answer) has no editor drawn,
        # so the editors alone would not line up with the cells
        texts = self.cells().evaluate_all(
            "cells => cells.map(c => (c.querySelector('.jp-InputArea-editor') || {}).innerText || '')")
        for index, text in enumerate(texts):
            if source in text:
                return index
        raise AssertionError(f"{self.name}: no cell contains {source!r}")

    def cell(self, source: str) -> Any:
        return self.cells().nth(self.index_of(source))

    def select(self, index: int) -> None:
        """Make cell ``index`` the active one (a click on its prompt, as a learner does)."""
        cell = self.cells().nth(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputPrompt").first.click()
        self.page.locator(f"{self.selector} .jp-Cell.jp-mod-active").nth(0).wait_for()

    def run_all(self, timeout: float = 300.0) -> None:
        """Run > Run All Cells, and wait for the last cell to finish (or the first error)."""
        menu(self.page, "Run", "Run All Cells")
        self.wait_finished(0, self.cells().count() - 1, timeout)

    def run_through(self, source: str, timeout: float = 300.0) -> None:
        """Run every cell from the first to the one containing ``source``, and wait for them."""
        last = self.index_of(source)
        self.select(last + 1)
        menu(self.page, "Run", "Run All Above Selected Cell")
        self.wait_finished(0, last, timeout)

    def start_cell(self, source: str) -> int:
        """Run the cell containing ``source`` alone (Run > Run Selected Cell and Do not Advance), without
        waiting for it: a learner then does what the cell waits for. Returns the cell's position."""
        index = self.index_of(source)
        self.select(index)
        menu(self.page, "Run", "Run Selected Cell and Do not Advance")
        return index

    def run_rest(self, timeout: float = 300.0) -> None:
        """Run > Run Selected Cell and All Below, from the selected cell; wait for the last one."""
        first = self.cells().evaluate_all("cells => cells.findIndex(c => c.classList.contains('jp-mod-active'))")
        menu(self.page, "Run", "Run Selected Cell and All Below")
        self.wait_finished(first, self.cells().count() - 1, timeout)

    def wait_finished(self, first: int, last: int, timeout: float) -> None:
        from playwright.sync_api import TimeoutError as PageTimeout

        try:
            self.page.wait_for_function(_FINISHED, arg=[self.selector, first, last, STDERR],
                                        timeout=timeout * 1000, polling=250)
        except PageTimeout:
            if self.artefacts is not None:
                self.page.screenshot(path=str(self.artefacts / f"TIMEOUT-{self.name}.png"))
            prompts = self.page.evaluate(_PROMPTS, [self.selector, first, last])
            raise AssertionError(f"{self.name}: cells {first}-{last} not finished after {timeout:.0f} s; "
                                 f"prompts {prompts}; {self.problems()}") from None

    def output_text(self, source: str) -> str:
        return "\n".join(self.cell(source).locator(".jp-OutputArea-output").all_inner_texts())

    def problems(self) -> list[str]:
        """What a learner would see as broken: error or stderr output, widgets that did not draw."""
        found = [f"{self.name}: error output: {text[:2000]}"
                 for text in self.panel.locator(f".jp-OutputArea-output[data-mime-type='{STDERR}']").all_inner_texts()]
        outputs = self.panel.locator(".jp-OutputArea-output")
        for text in outputs.all_inner_texts():
            for stuck in ("Loading widget...", "Error displaying widget", "Failed to load model class"):
                if stuck in text:
                    found.append(f"{self.name}: a widget shows {stuck!r}")
        # the live view drawn as static text or HTML means the widget was not rendered
        unrendered = self.panel.locator(".jhtutorial-liveview:not(.jupyter-widgets .jhtutorial-liveview)").count()
        if unrendered:
            found.append(f"{self.name}: {unrendered} live view(s) drawn as plain HTML, not as a widget")
        plain = [t for t in self.panel.locator(".jp-OutputArea-output[data-mime-type='text/plain']").all_inner_texts()
                 if t.startswith("pods: ") or t.startswith("<LiveView")]
        found += [f"{self.name}: the live view fell back to plain text: {t[:200]}" for t in plain]
        prompts = self.page.evaluate(_PROMPTS, [self.selector, 0, self.cells().count() - 1])
        unfinished = [p for p in prompts if not re.fullmatch(r"\[\d+\]:", p)]
        if unfinished:
            found.append(f"{self.name}: {len(unfinished)} code cell(s) did not run: {unfinished}")
        return found

    def live_view(self) -> Any:
        """The live view widget (the first one in the notebook)."""
        return self.panel.locator(".jupyter-widgets .jhtutorial-liveview").first

    def live_rows(self) -> list[list[str]]:
        """The live view's table, row by row (name, phase, ready, restarts, age, node, latest event)."""
        rows = self.live_view().locator("tbody tr")
        return [[cell.strip() for cell in row.locator("td").all_inner_texts()] for row in rows.all()]

    def wait_live(self, predicate_js: str, timeout: float = 60.0) -> None:
        """Wait until ``predicate_js(rows)`` holds for the live view's rows (arrays of cell texts)."""
        script = f"""([selector]) => {{
            const view = document.querySelector(selector + ' .jupyter-widgets .jhtutorial-liveview');
            if (!view) return false;
            const rows = Array.from(view.querySelectorAll('tbody tr'))
                .map(tr => Array.from(tr.querySelectorAll('td')).map(td => td.textContent.trim()));
            return ({predicate_js})(rows);
        }}"""
        self.page.wait_for_function(script, arg=[self.selector], timeout=timeout * 1000, polling=250)
