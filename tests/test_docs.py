"""The reference pages under docs/: they exist, the README and the notebooks link them, and every relative link
in them leads to a file of the project. Pure: no cluster needed."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["glossary.md", "troubleshooting.md", "login.md", "helm-zero-to-jupyterhub.md", "pod-sandboxes.md",
         "instructor-notes.md"]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(text: str) -> list[str]:
    return [target for target in LINK.findall(text) if "://" not in target and not target.startswith("mailto:")]


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_of_a_reference_page_leads_to_a_file(page: str) -> None:
    path = ROOT / "docs" / page
    for target in relative_links(path.read_text()):
        assert (path.parent / target).exists(), f"{page} links {target}, which does not exist"


def test_the_readme_links_every_reference_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        assert f"](docs/{page})" in readme, page
    for target in relative_links(readme):
        assert (ROOT / target).exists(), target


def test_links_from_the_notebooks_to_the_docs_lead_to_files() -> None:
    linked = set()
    for notebook in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")):
        for cell in nbformat.read(notebook, as_version=4).cells:
            if cell.cell_type == "markdown":
                for target in relative_links(cell.source):
                    assert (notebook.parent / target).exists(), f"{notebook.name} links {target}"
                    linked.add(Path(target).name)
    assert {"glossary.md", "troubleshooting.md", "helm-zero-to-jupyterhub.md"} <= linked, linked


def test_the_glossary_explains_the_terms_the_lessons_rely_on() -> None:
    headwords = set(re.findall(r"^\*\*([^*]+)\*\*", (ROOT / "docs" / "glossary.md").read_text(), re.MULTILINE))
    text = " ".join(headwords)
    for term in ("ServiceAccount", "RoleBinding", "ConfigMap", "Secret", "PersistentVolumeClaim", "StorageClass",
                 "Volume binding mode", "EndpointSlice", "Service types", "ReplicaSet", "Recreate", "KubeSpawner",
                 "configurable-http-proxy", "Downward API", "seccomp", "securityContext", "kwok",
                 "Server-side apply", "create vs apply", "Access modes"):
        assert term in text, term


def test_the_troubleshooting_page_covers_the_failures_learners_meet() -> None:
    headings = " ".join(re.findall(r"^### (.+)$", (ROOT / "docs" / "troubleshooting.md").read_text(), re.MULTILINE))
    for symptom in ("ImagePullBackOff", "CrashLoopBackOff", "PVC stuck", "403 from KubeSpawner", "token mismatch",
                    "HTTP 413", "no answer from the Kubernetes API server"):
        assert symptom in headings, symptom


def login_diagrams() -> list[str]:
    text = (ROOT / "docs" / "login.md").read_text()
    return [block.split("```", 1)[0] for block in text.split("```mermaid\n")[1:]]


def messages(diagram: str) -> list[str]:
    """The message lines, a label's line breaks (``<br/>``) read as spaces."""
    return [line.strip().replace("<br/>", " ") for line in diagram.splitlines() if "->>" in line]


def test_the_login_is_two_mermaid_sequences_the_login_and_spawn_then_the_route_and_oauth() -> None:
    spawn, sign_in = diagrams = login_diagrams()
    for diagram in diagrams:
        assert diagram.startswith("sequenceDiagram")
        # mermaid reads ';' as the end of a statement and needs text after every message's colon
        for line in diagram.splitlines()[1:]:
            assert ";" not in line, line
            if "->>" in line:
                assert line.split(":", 1)[1].strip(), line
    participants = [re.findall(r"^\s*(?:actor|participant) (\w+) as", d, re.MULTILINE) for d in diagrams]
    assert participants == [["B", "P", "H", "A", "U"], ["B", "P", "U", "H"]]
    # request by request, in order, as JupyterHub does it
    assert [m.split(":", 1)[1].strip().split(" ", 2)[:2] for m in messages(spawn) if m.startswith(("B->>", "H-->>B"))][:6] == [
        ["GET", "/hub/login"], ["the", "login"], ["POST", "/hub/login"], ["302", "/hub/spawn"], ["GET", "/hub/spawn"],
        ["302", "/hub/spawn-pending/admin"]]
    polled = spawn.split("loop until it answers", 1)[1].split("end", 1)[0]
    assert "H->>U: GET POD-IP:8888/user/admin/api" in polled  # the hub polls; the server reports nothing
    assert spawn.index("/user/admin/api") < spawn.index("POST /api/routes/user/admin")  # the route comes after
    flow = [m.split(":", 1)[1].strip() for m in messages(sign_in)]
    order = ["GET /user/admin/lab", "302 /hub/api/oauth2/authorize", "GET /hub/api/oauth2/authorize",
             "302 /user/admin/oauth_callback", "GET /user/admin/oauth_callback", "POST /hub/api/oauth2/token",
             "GET /hub/api/user"]
    positions = [next(i for i, text in enumerate(flow) if step in text) for step in order]
    assert positions == sorted(positions), flow
    assert not [m for m in messages(sign_in) if "cookie admin's" in m]


def test_the_login_diagrams_name_urls_jupyterhub_serves() -> None:
    """The hub's pages and API paths of the diagrams are in the handler tables of the JupyterHub the hub runs
    (the tests pin the hub image's version), and the user server's callback is HubOAuth's."""
    from jupyterhub.apihandlers import auth
    from jupyterhub.handlers import login, pages
    from jupyterhub.services.auth import HubOAuth

    hub_paths = {handler[0] for handler in [*pages.default_handlers, *login.default_handlers, *auth.default_handlers]}
    text = "\n".join(login_diagrams())
    for path in ("/spawn", "/spawn-pending/([^/]+)", "/login", "/api/oauth2/authorize", "/api/oauth2/token"):
        assert path in hub_paths, path
    for shown in ("/hub/spawn", "/hub/spawn-pending/admin", "/hub/login", "/hub/api/oauth2/authorize",
                  "/hub/api/oauth2/token"):
        assert shown in text, shown
    callback = HubOAuth(base_url="/user/admin/", api_url="http://hub:8081/hub/api", api_token="unused").oauth_redirect_uri
    assert callback.endswith("/user/admin/oauth_callback") and "/user/admin/oauth_callback" in text
