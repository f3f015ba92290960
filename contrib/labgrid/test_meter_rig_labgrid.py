"""Unit tests of meter_rig_labgrid: proxy handling, outcomes, the failure message.

Run with ``pytest contrib/labgrid/test_meter_rig_labgrid.py`` (``.ci/labgrid/run.sh`` does).
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from labgrid import Target  # noqa: E402
from labgrid.util import proxy  # noqa: E402

import meter_rig_labgrid as mr  # noqa: E402


@pytest.fixture
def forwards(monkeypatch):
    """Records SSH forwards labgrid would open instead of opening them."""
    calls = []

    def request_forward(proxy_host, host, port):
        calls.append((proxy_host, host, port))
        return 40000 + len(calls)

    monkeypatch.setattr(proxy.sshmanager, "request_forward", request_forward)
    monkeypatch.setattr(proxy.ProxyManager, "_force_proxy", None)
    return calls


def driver_for(extra=None, **params):
    t = Target("t")
    rig = mr.MeterRig(t, "rig", host=params.pop("host", "127.0.0.1"), **params)
    if extra is not None:
        rig.extra = extra
    d = mr.MeterRigDriver(t, "drv")
    return t, d


def test_a_direct_rig_is_reached_at_its_host_and_port(forwards):
    t, d = driver_for(host="192.0.2.17", port=8061)
    t.activate(d)
    assert d.base_url == "http://192.0.2.17:8061"
    assert forwards == []


def test_an_isolated_exporter_means_an_ssh_forward_over_it(forwards):
    t, d = driver_for({"proxy": "exporter.lab", "proxy_required": True}, port=18061)
    t.activate(d)
    assert forwards == [("exporter.lab", "127.0.0.1", 18061)]
    assert d.base_url == "http://localhost:40001"


def test_a_forced_proxy_is_honoured(forwards, monkeypatch):
    monkeypatch.setattr(proxy.ProxyManager, "_force_proxy", "jump.lab")
    t, d = driver_for(host="192.0.2.17", port=8061)
    t.activate(d)
    assert forwards == [("jump.lab", "192.0.2.17", 8061)]
    assert d.base_url == "http://localhost:40001"


def test_a_missing_token_file_names_the_fix(tmp_path):
    t, d = driver_for(token_file=str(tmp_path / "nope"))
    with pytest.raises(mr.MeterRigError, match="copy the rig's --token-file"):
        t.activate(d)


def test_the_token_is_read_from_the_file(tmp_path):
    f = tmp_path / "token"
    f.write_text("abcdefghijklmnopqrstuvwx\n")
    t, d = driver_for(token_file=str(f))
    t.activate(d)
    assert d._token == "abcdefghijklmnopqrstuvwx"


def test_outcomes_and_the_failure_names_each_case():
    rec = {
        "outcome": {"outcome": "failed"},
        "cases": [
            {"id": "readout.framing", "verdict": "pass"},
            {"id": "readout.bcc", "verdict": "fail", "message": "sum rule"},
            {"id": "pulse_out.width", "verdict": "skip", "message": "serial"},
            {"id": "readout.registers", "verdict": "inconclusive", "message": "cut"},
        ],
    }
    r = mr.MeterRigRunResult(id="rig-a-1", outcome=mr.outcome_of(rec), record=rec, files={})
    assert r.outcome == "failed"
    msg = str(mr.MeterRigRunFailed(r, "http://rig"))
    assert "readout.bcc (fail: sum rule)" in msg
    assert "readout.registers (inconclusive: cut)" in msg
    assert "readout.framing" not in msg and "pulse_out.width" not in msg
    stopped = {"aborted": "stopped: the maximum run time of 2 s passed on rig serve's wall clock",
               "outcome": {"outcome": "stopped", "reason": {"by": "max_wall_time"}}, "cases": []}
    assert mr.outcome_of(stopped) == "stopped"
    r = mr.MeterRigRunResult(id="x", outcome="stopped", record=stopped, files={})
    assert "wall clock" in str(mr.MeterRigRunFailed(r, "http://rig"))
    assert mr.outcome_of({"cases": [{"verdict": "pass"}]}) == "passed"


def test_the_isolated_exporter_class_carries_the_proxy():
    export_cls = mr._register_export()
    from labgrid.remote.exporter import exports

    assert exports["MeterRig"] is export_cls
    e = export_cls(
        {"cls": "MeterRig", "params": {"host": "127.0.0.1", "port": 8061}},
        host="exp", proxy="exp.lab", proxy_required=True,
    )
    e.poll()
    assert e.params["extra"] == {"proxy": "exp.lab", "proxy_required": True}
    assert e.params["port"] == 8061
