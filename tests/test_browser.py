"""The workbook in a real browser: `jhtutorial lab` and Chromium, the notebooks run in order as a learner runs them.

What a learner sees is checked on the page: no error output in any notebook, every widget drawn (none stuck
at "Loading widget..." or shown as plain text), the live view of 06 following the Deployments and the hub
pod's replacement; and through the API server: 08 leaves the namespace empty.

Screenshots go to output/browser/ (not committed). `make screenshots` also writes the README's pictures to
docs/img/ (JHTUTORIAL_SCREENSHOTS names that folder).

Needs Debian's chromium (or $JHTUTORIAL_CHROMIUM): without it these tests skip, or fail when CI=true.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from jhtutorial.kubeapi import (
    CONFIGMAPS, DEPLOYMENTS, EVENTS, NAMESPACES, PODS, PVCS, PVS, REPLICASETS, ROLE_BINDINGS, ROLES, SECRETS, SERVICE_ACCOUNTS, SERVICES,
    KubeApi,
)
from jhtutorial.notebook.exercises import NOT_TRIED
from tests import labdriver

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = ROOT / "output" / "browser"
SCREENSHOTS_ENV = "JHTUTORIAL_SCREENSHOTS"  # where `make screenshots` wants the README's pictures
VIEWPORT = {"width": 1280, "height": 800}
NEWS_SECONDS = 30  # JupyterLab asks about news a moment after it is drawn
SPAWN_SECONDS = 180  # login to admin's JupyterLab drawn: the user server's first start takes a while
# Kubernetes puts these into every namespace; everything else in it after 08 would be a leftover
NAMESPACE_DEFAULTS = {("ServiceAccount", "default"), ("ConfigMap", "kube-root-ca.crt")}
# their folded answers would change the cluster: with a learner at the keyboard they wait until the learner tried
EXERCISES_THAT_CHANGE_THE_CLUSTER = ("01-rbac", "02-configmaps", "04-pvc", "05-services", "06-deployments")

pytestmark = [pytest.mark.cluster, pytest.mark.browser]


@pytest.fixture(scope="module")
def chromium() -> Path:
    reason = labdriver.missing_browser()
    if reason:
        if labdriver.in_ci() or os.environ.get(SCREENSHOTS_ENV):
            pytest.fail(f"{reason} (CI=true or `make screenshots`: the browser tests must run)")
        pytest.skip(reason)
    found = labdriver.find_chromium()
    assert found is not None
    return found


@pytest.fixture(scope="module")
def artefacts() -> Path:
    shutil.rmtree(ARTEFACTS, ignore_errors=True)
    ARTEFACTS.mkdir(parents=True)
    return ARTEFACTS


@pytest.fixture(scope="module")
def namespace(api_client: client.ApiClient, backing: Any) -> Iterator[str]:
    """A namespace of the test's own that notebook 00 creates, as it does for a learner (and marks, so that
    the local cluster runs its pods' programs); deleted afterwards."""
    name = f"jht-browser-{secrets.token_hex(3)}"
    yield name
    kube = KubeApi(api_client)
    if kube.get_or_none(NAMESPACES.path(name=name)) is not None:
        client.CoreV1Api(api_client).delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def lab(chromium: Path, kubeconfig: Path, namespace: str, artefacts: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[labdriver.Lab]:
    workdir = tmp_path_factory.mktemp("lab")
    running = labdriver.start_lab(namespace=namespace, kubeconfig=kubeconfig, workdir=workdir,
                                  log=artefacts / "jupyterlab.log")
    yield running
    running.stop()
    assert running.token not in running.log.read_text(), "the JupyterLab token is in its log"


@pytest.fixture(scope="module")
def page(chromium: Path, lab: labdriver.Lab) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=labdriver.CHROMIUM_FLAGS)
        context = browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(60_000)
        tab = context.new_page()
        labdriver.log_in(tab, lab)
        labdriver.open_folder(tab, "notebooks")  # the working copy holds notebooks/ beside manifests/ and docs/
        yield tab
        assert lab.token not in tab.url
        browser.close()


@pytest.fixture(scope="module")
def series() -> list[str]:
    """The notebooks that passed so far: each test needs the ones before it."""
    return []


@pytest.fixture(scope="module")
def way_in() -> list[str]:
    """The hub's address 07 opened and left open, for 08 to find closed."""
    return []


def needs(series: list[str], *notebooks: str) -> None:
    missing = [name for name in notebooks if name not in series]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} to have passed in the browser first")


def screenshot(page: Any, name: str, *, readme: bool = False) -> None:
    """Save what the page shows now; the README's pictures also go where `make screenshots` says."""
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"))
    target = os.environ.get(SCREENSHOTS_ENV)
    if readme and target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"))


def proxy_token(kube: KubeApi, namespace: str) -> list[str]:
    """The proxy token of the namespace's hub-secret, as text and as base64 (empty before step 03)."""
    secret = kube.get_or_none(SECRETS.path(namespace, "hub-secret"))
    if secret is None:
        return []
    encoded = secret["data"]["proxy.token"]
    return [encoded, base64.b64decode(encoded).decode()]


def managers(kube: KubeApi, path: str) -> set[str]:
    return {entry.get("manager", "") for entry in kube.get(path)["metadata"].get("managedFields") or []}


def run_clean(page: Any, name: str, kube: KubeApi, namespace: str) -> labdriver.Notebook:
    """Open a notebook, Run All, and check that nothing on the page is broken or secret."""
    notebook = labdriver.open_notebook(page, f"{name}.ipynb", ARTEFACTS)
    notebook.run_all()
    check_page(notebook, kube, namespace)
    return notebook


def check_page(notebook: labdriver.Notebook, kube: KubeApi, namespace: str) -> None:
    screenshot(notebook.page, notebook.name.removesuffix(".ipynb"))
    assert notebook.problems() == []
    shown = notebook.panel.text_content() or ""
    assert not [secret for secret in proxy_token(kube, namespace) if secret in shown], "the proxy token is shown"


# --- a lab terminal, as the notebooks' Your-turn steps use it -----------------------------------------


def test_a_lab_terminal_has_the_kernels_jhtutorial_and_a_kubectl_for_the_cluster(page: Any) -> None:
    terminal = labdriver.open_terminal(page)
    terminal.type("jhtutorial --help")  # as 07's `jhtutorial login --user bob` and the README's catch-up are typed
    shown = terminal.wait_for(r"^usage: jhtutorial ")
    assert "command not found" not in shown and "up " in shown and "login " in shown, shown
    # the same installation as the notebooks' kernel (JupyterLab starts kernels with its own interpreter)
    terminal.type('head -n 3 "$(command -v jhtutorial)"; echo listed-$((40+2))')
    shown = terminal.wait_for(r"^listed-42")
    launcher = re.search(r"^exec (\S+) -m jhtutorial\.cli ", shown, re.M)
    assert launcher and Path(launcher.group(1)).resolve() == Path(sys.executable).resolve(), shown
    terminal.type("kubectl auth can-i create pods; echo asked-$((40+2))")
    shown = terminal.wait_for(r"^asked-42")
    assert re.search(r"^yes$", shown, re.M), shown
    screenshot(page, "lab-terminal")
    terminal.close()


DIAGRAM_WINDOW = {"width": 1400, "height": 900}
SMALLEST_TEXT_PX = 11
# JupyterLab draws a mermaid block as an <img> of its SVG, scaled down to the width of the page. The size each
# text is seen at: the SVG laid out at its own size (its viewBox) to read each text's font size there, times the
# scale the <img> is shown at.
_DRAWN_TEXT_SIZES = """panel => Array.from(panel.querySelectorAll('.jp-RenderedMermaid img')).flatMap(img => {
    const source = decodeURIComponent(img.src.slice(img.src.indexOf(',') + 1));
    const svg = document.importNode(new DOMParser().parseFromString(source, 'image/svg+xml').documentElement, true);
    const width = parseFloat(svg.getAttribute('viewBox').split(/\\s+/)[2]);
    svg.setAttribute('width', width);
    svg.style.maxWidth = 'none';
    const holder = document.createElement('div');
    holder.style.cssText = 'position: absolute; left: -20000px; top: 0';
    holder.appendChild(svg);
    document.body.appendChild(holder);
    const shown = img.getBoundingClientRect().width / width;
    const sizes = Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim()).map(t => {
        const matrix = t.getScreenCTM();
        return [t.textContent.trim(), parseFloat(getComputedStyle(t).fontSize) * Math.hypot(matrix.a, matrix.b) * shown];
    });
    holder.remove();
    return sizes;
})"""


def test_the_login_diagrams_are_legible_in_a_1400_px_window(page: Any) -> None:
    page.set_viewport_size(DIAGRAM_WINDOW)
    try:
        page.locator(".jp-BreadCrumbs-home").click()
        labdriver.open_folder(page, "docs")
        page.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText",
                                                            has_text=re.compile(r"^login\.md$"))).click(button="right")
        page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile("^Open With$")).hover()
        page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile("^Markdown Preview$")).click()
        tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text="login.md")
        tab.wait_for()
        panel = page.locator(f"#{tab.get_attribute('data-id')}")
        page.wait_for_function("panel => Array.from(panel.querySelectorAll('.jp-RenderedMermaid img'))"
                               "  .filter(img => img.complete && img.naturalWidth > 0).length === 2",
                               arg=panel.element_handle())
        screenshot(page, "login-diagrams")
        sizes = panel.evaluate(_DRAWN_TEXT_SIZES)
        assert len(sizes) > 30, sizes  # both drawings' labels and messages, not an error message
        small = [(text, round(size, 1)) for text, size in sizes if size < SMALLEST_TEXT_PX]
        assert small == [], f"text drawn smaller than {SMALLEST_TEXT_PX} px: {small[:10]}"
        page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabCloseIcon").click()
    finally:
        page.set_viewport_size(VIEWPORT)
        page.locator(".jp-BreadCrumbs-home").click()
        labdriver.open_folder(page, "notebooks")


# --- the series, in order -----------------------------------------------------------------------------


def test_notebooks_00_to_05_run_all_without_an_error(
    page: Any, api_client: client.ApiClient, namespace: str, series: list[str],
) -> None:
    kube = KubeApi(api_client)
    for name in ("00-introduction", "01-rbac", "02-configmaps", "03-secret", "04-pvc", "05-services"):
        notebook = run_clean(page, name, kube, namespace)
        if name in EXERCISES_THAT_CHANGE_THE_CLUSTER:  # Run All leaves the exercise to the learner
            assert NOT_TRIED in (notebook.panel.text_content() or ""), name
        series.append(name)
    # nothing did the exercises: no hand-made change on the Role or the ConfigMap, no scratch claim ever made
    assert "kubectl-patch" not in managers(kube, ROLES.path(namespace, "hub"))
    assert "kubectl-edit" not in managers(kube, CONFIGMAPS.path(namespace, "hub-config"))
    assert not kube.get(EVENTS.path(namespace), fieldSelector="involvedObject.name=scratch")["items"]


def test_06_live_view_shows_the_pods_ready_and_the_hub_pods_replacement(
    page: Any, api_client: client.ApiClient, namespace: str, series: list[str],
) -> None:
    needs(series, "05-services")
    kube = KubeApi(api_client)
    notebook = labdriver.open_notebook(page, "06-deployments.ipynb", ARTEFACTS)
    notebook.run_through('nb.wait_step(conn, "deployments"')  # the learner's turn (or its folded answer), then the wait
    notebook.wait_live("""rows => rows.some(r => r[0].startsWith('hub-') && r[1] === 'Running' && r[2] === '1/1')
                              && rows.some(r => r[0].startsWith('proxy-') && r[1] === 'Running' && r[2] === '2/2')""")

    # the notebook's own cell deletes the hub pod; the view drops it and shows its replacement
    notebook.run_through('nb.delete_and_watch(conn, "hub"')
    printed = notebook.output_text('nb.delete_and_watch(conn, "hub"')
    old = printed.split("deleted:", 1)[1].split()[1].rstrip(",")
    new = printed.split("replacement:", 1)[1].split()[1].rstrip(",")
    assert old != new and old.startswith("hub-") and new.startswith("hub-"), printed
    notebook.wait_live(f"""rows => rows.some(r => r[0] === '{new}' && r[1] === 'Running' && r[2] === '1/1')
                               && !rows.some(r => r[0] === '{old}')""")
    page.evaluate("el => el.closest('.jp-Cell').scrollIntoView({block: 'start'})",
                  notebook.live_view().element_handle())
    screenshot(page, "06-live-view", readme=True)

    notebook.run_rest()
    check_page(notebook, kube, namespace)
    assert NOT_TRIED in (notebook.panel.text_content() or "")  # the selector exercise is left to the learner
    series.append("06-deployments")


def test_07_admin_logs_in_through_the_hub_in_a_second_tab_and_lands_in_jupyterlab(
    page: Any, api_client: client.ApiClient, namespace: str, series: list[str], way_in: list[str],
) -> None:
    needs(series, "06-deployments")
    kube = KubeApi(api_client)
    notebook = labdriver.open_notebook(page, "07-login-and-spawn.ipynb", ARTEFACTS)
    notebook.run_through("jhtutorial.access.backing_report(conn)")  # the way in, then what runs behind it
    printed = notebook.output_text("jhtutorial.open_way_in(")
    found = re.search(r"^(http://127\.0\.0\.1:\d+) \(kubectl\)", printed, re.M)
    assert found, f"07 printed no loopback address to open: {printed}"
    assert f"jhtutorial access open -n {namespace}" in printed, printed  # the command that reopens it

    # the notebook follows the login while the learner logs in, in a second tab, and shows a countdown meanwhile
    following = notebook.start_cell("nb.log_in(")
    notebook.cell("nb.log_in(").locator(".jp-OutputArea-output", has_text=re.compile(r"waiting for your login at "
                                                                                     r".*: \d+ s left")).wait_for()
    assert f"open {found.group(1)}/hub/login in a second browser tab" in notebook.output_text("nb.log_in(")
    hub = page.context.new_page()
    hub.goto(f"{found.group(1)}/hub/login")
    hub.locator("#username_input").fill("admin")
    hub.locator("#password_input").fill("admin")
    hub.locator("#login_submit").click()
    hub.wait_for_url(re.compile(r"/hub/spawn-pending/admin"))
    hub.locator("#progress-message", has_text=re.compile(r"\S")).wait_for()
    hub.locator("#progress-details summary").click()  # unfold the event log, as a curious learner does
    hub.locator("#progress-log .progress-log-event").first.wait_for()
    screenshot(hub, "07-spawn-pending", readme=True)
    hub.wait_for_url(re.compile(r"/user/admin/lab"), timeout=SPAWN_SECONDS * 1000)
    hub.locator("#jp-main-dock-panel").wait_for(timeout=SPAWN_SECONDS * 1000)
    hub.locator(".jp-LauncherCard").first.wait_for(timeout=SPAWN_SECONDS * 1000)
    # admin's own JupyterLab asks about news on its first start: the learner answers No
    news = hub.locator(".Toastify__toast", has_text="official Jupyter news")
    news.get_by_role("button", name="No", exact=True).click(timeout=NEWS_SECONDS * 1000)
    news.wait_for(state="detached")
    # served through the hub: its File menu has the hub's control panel and log-out
    hub.locator(".lm-MenuBar-item", has_text=re.compile("^File$")).click()
    hub.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile("^Hub Control Panel$")).wait_for()
    screenshot(hub, "07-admin-jupyterlab", readme=True)
    hub.keyboard.press("Escape")

    # the notebook's own cell saw that login (it did not log in itself), then the rest of 07 runs to its end
    notebook.wait_finished(following, following, timeout=SPAWN_SECONDS)
    followed = notebook.output_text("nb.log_in(")
    assert "a Jupyter server answered" in followed and "using the hub at" not in followed, followed
    notebook.select(following + 1)
    notebook.run_rest()
    check_page(notebook, kube, namespace)
    assert kube.get(PODS.path(namespace, "jupyter-admin"))["metadata"]["annotations"][
        "hub.jupyter.org/username"] == "admin"
    # Run All left its exercises to the learner: no bob, admin's server not stopped, the Role untouched
    shown = notebook.panel.text_content() or ""
    assert shown.count(NOT_TRIED) == 3, shown
    assert kube.get_or_none(PODS.path(namespace, "jupyter-bob")) is None
    assert "kubectl-patch" not in managers(kube, ROLES.path(namespace, "hub"))
    # and the way in stayed open: admin's JupyterLab in the second tab still answers after the notebook ended
    hub.reload()
    hub.locator(".jp-LauncherCard").first.wait_for(timeout=60_000)
    answer = hub.request.get(f"{found.group(1)}/user/admin/api/status")
    assert answer.status == 200, answer.text()
    screenshot(hub, "07-admin-jupyterlab-after-07")
    # admin's own terminal runs inside the pod jupyter-admin as its user, not as an account of the machine
    inside = labdriver.open_terminal(_with_readable_terminals(hub, f"{found.group(1)}/user/admin"))
    inside.type("echo uid-$(id -u) host-$(hostname); echo seen-$((40+2))")
    assert re.search(r"^uid-1000 host-jupyter-admin$", inside.wait_for(r"^seen-42"), re.M), inside.text()
    inside.close()
    hub.close()
    # and the learner gets into the hub's pod from the workbook's own terminal, checked by RBAC, as its user
    terminal = labdriver.open_terminal(page)
    terminal.type(f"kubectl exec -it -n {namespace} deploy/hub -- sh")
    terminal.wait_for(r"^\$\s*$")  # the pod's shell prompts (typed ahead, a line may lose its first characters)
    terminal.type("echo uid-$(id -u) host-$(hostname) config-$(ls /usr/local/etc/jupyterhub); exit")
    shown = terminal.wait_for(r"^uid-\d+ host-\S+ config-\S+")
    assert re.search(r"^uid-1000 host-hub-\S+ config-jupyterhub_config\.py$", shown, re.M), shown
    terminal.close()
    way_in.append(found.group(1))
    series.append("07-login-and-spawn")


def _with_readable_terminals(page: Any, server: str) -> Any:
    """A user's JupyterLab with its terminals' screen-reader mode on, as the workbook's lab has it
    (labdriver.LAB_SETTINGS): a terminal then writes its rows into the page as text, not only on a canvas."""
    plugin = "@jupyterlab/terminal-extension:plugin"
    xsrf = next(c["value"] for c in page.context.cookies(f"{server}/lab") if c["name"] == "_xsrf")
    answer = page.request.put(f"{server}/lab/api/settings/{plugin}", headers={"X-XSRFToken": xsrf},
                              data=json.dumps({"raw": json.dumps({"screenReaderMode": True})}))
    assert answer.status in (200, 204), answer.text()
    page.reload()
    page.locator(".jp-LauncherCard").first.wait_for(timeout=60_000)
    return page


def test_08_cleanup_leaves_the_namespace_empty(
    page: Any, api_client: client.ApiClient, namespace: str, series: list[str], way_in: list[str],
) -> None:
    needs(series, "07-login-and-spawn")
    import requests

    assert requests.get(f"{way_in[0]}/hub/health", timeout=10).status_code == 200  # 07 left it open
    kube = KubeApi(api_client)
    claims = {item["metadata"]["name"] for item in kube.get(PVCS.path(namespace))["items"]}
    assert {"hub-db-dir", "claim-admin"} <= claims
    run_clean(page, "08-cleanup", kube, namespace)

    left = [f"{resource.kind}/{item['metadata']['name']}"
            for resource in (PODS, SERVICES, CONFIGMAPS, SECRETS, SERVICE_ACCOUNTS, PVCS, DEPLOYMENTS, REPLICASETS,
                             ROLES, ROLE_BINDINGS)
            for item in kube.get(resource.path(namespace))["items"]
            if (resource.kind, item["metadata"]["name"]) not in NAMESPACE_DEFAULTS]
    assert left == []
    volumes = [pv["metadata"]["name"] for pv in kube.get(PVS.path())["items"]
               if (pv["spec"].get("claimRef") or {}).get("namespace") == namespace]
    assert volumes == []
    # 08 closed the way in 07 left open (a kernel of its own found it): nothing listens there any more
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{way_in[0]}/hub/health", timeout=10)
