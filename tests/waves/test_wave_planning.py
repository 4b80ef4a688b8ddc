"""Waves from depends_on or declared explicitly; cycles and misordered waves are refused."""

from __future__ import annotations

import pytest

from deploypipe.spec.waves import plan_waves


def test_without_dependencies_every_service_is_one_wave():
    assert plan_waves(["api", "web", "worker"], {}) == [["api", "web", "worker"]]


def test_depends_on_puts_a_service_in_the_first_wave_after_its_dependencies():
    deps = {"web": ["api"], "worker": ["api"], "cron": ["worker"]}
    assert plan_waves(["api", "web", "worker", "cron"], deps) == [["api"], ["web", "worker"], ["cron"]]


def test_a_dependency_outside_the_release_does_not_hold_a_service_back():
    assert plan_waves(["web", "worker"], {"worker": ["api"]}) == [["web", "worker"]]


def test_a_cycle_is_refused_naming_its_services():
    with pytest.raises(ValueError, match="depends_on makes a cycle between a, b"):
        plan_waves(["a", "b", "c"], {"a": ["b"], "b": ["a"]})


def test_explicit_waves_keep_their_order_and_must_respect_depends_on():
    assert plan_waves(["x"], {"web": ["api"]}, [["api", "worker"], ["web"]]) == [["api", "worker"], ["web"]]
    with pytest.raises(ValueError, match="service 'web' \\(wave 1\\) depends on 'api', which is not in an earlier wave"):
        plan_waves([], {"web": ["api"]}, [["web", "api"]])
    with pytest.raises(ValueError, match="service 'api' is in more than one wave"):
        plan_waves([], {}, [["api"], ["api"]])
