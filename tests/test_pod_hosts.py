"""A pod's hosts file: the names cluster DNS would answer, pure (no cluster, no root)."""

from __future__ import annotations

import doctest

import pytest

from jhtutorial.localcluster.backing import hosts
from jhtutorial.localcluster.backing.hosts import hosts_file


def test_the_examples_hold() -> None:
    assert doctest.testmod(hosts, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_services_of_its_namespace_resolve_by_every_name_and_headless_ones_are_left_out() -> None:
    text = hosts_file("jupyter-admin", "10.244.2.9", "tutorial",
                      {"hub": "10.96.0.20", "proxy-public": "10.96.0.21", "headless": "None", "kubernetes": "10.96.0.1"})
    by_name = {name: line.split("\t")[0] for line in text.splitlines() for name in line.split("\t")[1].split()}
    assert by_name["jupyter-admin"] == "10.244.2.9"
    for name in ("hub", "hub.tutorial", "hub.tutorial.svc", "hub.tutorial.svc.cluster.local"):
        assert by_name[name] == "10.96.0.20"
    assert by_name["kubernetes.default.svc"] == "10.96.0.1"
    assert "headless" not in by_name
    assert "kubernetes.tutorial" in by_name  # a Service of the namespace named kubernetes is still its own


def test_an_address_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValueError):
        hosts_file("p", "10.244.0.1", "ns", {"evil": "10.96.0.2 extra-name"})
