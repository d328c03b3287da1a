"""The reference pages under docs/: they exist, the README and the notebooks link them, and every relative link
in them leads to a file of the project. Pure: no cluster needed."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["glossary.md", "troubleshooting.md", "login.md", "helm-zero-to-jupyterhub.md", "pod-sandboxes.md"]
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


def test_the_login_diagram_is_a_mermaid_sequence_from_browser_to_user_pod() -> None:
    text = (ROOT / "docs" / "login.md").read_text()
    diagram = text.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert diagram.startswith("sequenceDiagram")
    participants = re.findall(r"^\s*(?:actor|participant) (\w+) as", diagram, re.MULTILINE)
    assert participants == ["B", "N", "C", "H", "A", "U"]
    # mermaid reads ';' as the end of a statement and needs text after every message's colon
    for line in diagram.splitlines()[1:]:
        assert ";" not in line, line
        if "->>" in line:
            assert line.split(":", 1)[1].strip(), line
