"""Fixtures of the meter-rig labgrid example: reserve a place by tags, lock it, release it.

``meter_rig_place`` reserves a place whose tags match ``--meter-rig-tags`` (waiting while
another client holds it), locks it for this user and host, and on teardown unlocks it and
cancels the reservation. The labgrid plugin's ``target`` fixture then sees that place through
``RemotePlace: {name: "+"}`` (the place of ``$LG_TOKEN``) in ``env.yaml``.
"""

import json
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def pytest_addoption(parser):
    g = parser.getgroup("meter-rig")
    g.addoption(
        "--meter-rig-tags",
        default=os.environ.get("METER_RIG_TAGS", "meter=351-combi"),
        help="place tags to reserve by, e.g. 'meter=351-combi module=kk05'",
    )
    g.addoption(
        "--meter-rig-suite",
        action="append",
        default=None,
        help="suite to run (repeatable; default: readout)",
    )
    g.addoption(
        "--meter-rig-events",
        default=None,
        help="append reserve/lock/unlock events as JSON lines to this file",
    )
    g.addoption(
        "--meter-rig-hold",
        type=float,
        default=0.0,
        help="keep the place locked this many seconds after the tests (lets a second client queue)",
    )
    g.addoption(
        "--meter-rig-reserve-timeout",
        type=float,
        default=600.0,
        help="longest wait for the reservation, seconds",
    )


def _client(config, *args, timeout=60.0):
    coord = config.option.lg_coordinator or os.environ.get("LG_COORDINATOR", "127.0.0.1:20408")
    cmd = ["labgrid-client", "-x", coord, *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def _event(config, what, **kw):
    path = config.option.meter_rig_events
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": what, "t": time.time(), "pid": os.getpid(), **kw}) + "\n")


def _place_of(config, token):
    out = _client(config, "-p", f"+{token}", "show")
    m = re.search(r"^Place '([^']+)'", out, re.M)
    return m.group(1) if m else f"+{token}"


@pytest.fixture(scope="session")
def meter_rig_place(request):
    """Reserves a place by tags, locks it, yields its name; unlocks and cancels on teardown."""
    config = request.config
    tags = config.option.meter_rig_tags.split()
    _event(config, "reserving", tags=tags)
    out = _client(
        config, "reserve", "--wait", "--shell", *tags,
        timeout=config.option.meter_rig_reserve_timeout,
    )
    m = re.search(r"LG_TOKEN=(\S+)", out)
    if not m:
        raise RuntimeError(f"labgrid-client reserve printed no token: {out!r}")
    token = m.group(1)
    os.environ["LG_TOKEN"] = token
    _client(config, "-p", f"+{token}", "lock")
    place = _place_of(config, token)
    _event(config, "locked", place=place, token=token, tags=tags)
    try:
        yield place
    finally:
        if config.option.meter_rig_hold > 0:
            time.sleep(config.option.meter_rig_hold)
        _event(config, "unlocking", place=place, token=token)
        _client(config, "-p", f"+{token}", "unlock")
        _client(config, "cancel-reservation", token)
        _event(config, "released", place=place, token=token)


@pytest.fixture(scope="session")
def rig(meter_rig_place, target):
    """The locked place's ``MeterRigDriver``, active and healthy."""
    from meter_rig_labgrid import MeterRigDriver

    drv = target.get_driver(MeterRigDriver)
    drv.wait_healthy(timeout_s=60)
    return drv


@pytest.fixture
def suites(request):
    return request.config.option.meter_rig_suite or ["readout"]
