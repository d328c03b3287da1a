"""docs/instructor-notes.md's "before the day": the DaemonSet that pre-pulls the images pulls exactly the images
the workbook runs (the manifests' containers and the user servers' image in hub-config), and the API server
accepts it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "docs" / "instructor-notes.md"


def prepull_daemonset() -> dict[str, Any]:
    block = re.search(r"```yaml\n(.*?)```", NOTES.read_text(), re.S)
    assert block, "no ```yaml block in the instructor notes"
    return yaml.safe_load(re.sub(r"^   ", "", block.group(1), flags=re.M))  # indented as part of a list item


def workbook_images() -> set[str]:
    images = set()
    for path in sorted((ROOT / "manifests").glob("deploy-*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            images |= {c["image"] for c in document["spec"]["template"]["spec"]["containers"]}
    config = (ROOT / "manifests" / "cm-hub-config.yaml").read_text()
    images |= set(re.findall(r'^\s*c\.KubeSpawner\.image = "([^"]+)"', config, re.M))
    return images


def test_the_prepull_daemonset_pulls_every_image_the_workbook_runs() -> None:
    daemonset = prepull_daemonset()
    assert daemonset["kind"] == "DaemonSet"
    pulled = {c["image"] for c in daemonset["spec"]["template"]["spec"]["initContainers"]}
    assert len(workbook_images()) == 4 and pulled == workbook_images()


def test_the_api_server_accepts_the_prepull_daemonset(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "apply", "--dry-run=server", "-n", namespace,
                           "-f", "-"], input=yaml.safe_dump(prepull_daemonset()), capture_output=True, text=True)
    assert done.returncode == 0 and "daemonset.apps/prepull created (server dry run)" in done.stdout, done.stderr
