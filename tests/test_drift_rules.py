"""The drift alert rules through `promtool test rules`: hand-written cases, and the series make bench-drift
generated from its scenarios with the times its replay of the rules says each alert fires."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from mlops_rakuten.devtools.drift_alert_timeline import rules

from conftest import ROOT, needs

GENERATED = ROOT / "tests/prometheus/drift_scenarios_test.yml"


@pytest.mark.parametrize("name", ["drift_alerts_test.yml", "drift_scenarios_test.yml"])
def test_the_rules_fire_when_and_where_the_tests_say(name):
    done = subprocess.run(
        [needs("promtool"), "test", "rules", str(ROOT / "tests/prometheus" / name)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_generated_scenarios_check_every_rule_firing_somewhere():
    """A generated file that expected nothing would pass whatever the rules did."""
    cases = yaml.safe_load(GENERATED.read_text(encoding="utf-8"))["tests"]
    fired = {check["alertname"] for case in cases for check in case["alert_rule_test"] if check["exp_alerts"]}
    assert fired == {rule.name for rule in rules(ROOT)}
    clean = next(case for case in cases if case["name"].startswith("clean"))
    assert all(check["exp_alerts"] == [] for check in clean["alert_rule_test"])
