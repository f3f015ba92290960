"""The meter-rig example test: the suites on the place reserved by tags must pass.

A failing run raises ``MeterRigRunFailed``, whose message names each case that did not pass;
the run's ``junit.xml``, ``record.json`` and report are saved under ``meter-rig-runs/ID/``.
"""


def test_conformance(rig, suites, meter_rig_place):
    result = rig.run(suites=suites)
    assert result.outcome == "passed"
    assert "junit.xml" in result.files
