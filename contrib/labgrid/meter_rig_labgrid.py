"""labgrid integration for meter-rig: a ``MeterRig`` resource and a ``MeterRigDriver``.

A ``MeterRig`` is one ``rig serve`` (a Pi on a meter, or a software meter): its HTTP address
(``host``, ``port``) and, when it listens beyond loopback, the file holding its API token
(``token_file``, read on the client). ``labgrid-exporter`` exports it from YAML::

    meter-rig-351:
      MeterRig:
        host: 192.0.2.17
        port: 8061
        token_file: /etc/meter-rig/token

Plain ``labgrid-exporter`` passes the parameters through unchanged. For an exporter started
with ``--isolated`` (clients reach the rig only through an SSH forward over the exporter) run
the exporter through this module, which registers ``MeterRigExport`` so the resource carries
labgrid's proxy information::

    python3 meter_rig_labgrid.py exporter [labgrid-exporter options] exporter.yaml

The driver always resolves the address through ``labgrid.util.proxy.proxymanager``, so both an
isolated exporter and ``LG_PROXY`` (a forced proxy) are honoured.

``MeterRigDriver.run()`` starts a conformance run over the HTTP API (``POST /runs``), waits for
it with progress on labgrid's step log, fetches ``junit.xml``, ``record.json`` and the HTML
report into a directory, and raises ``MeterRigRunFailed`` (naming every case that did not pass)
when the run failed, was inconclusive, or was stopped or interrupted. If the waiting client is
interrupted (Ctrl-C, a cancelled CI job), the driver asks the rig to stop the run
(``DELETE /runs/{id}``); if the client dies outright, the run still ends at its
``max_wall_time_s`` on the rig, and its record says so.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

import attr

from labgrid.driver.common import Driver
from labgrid.factory import target_factory
from labgrid.resource.common import NetworkResource
from labgrid.step import step
from labgrid.util.proxy import proxymanager

__all__ = [
    "MeterRig",
    "MeterRigDriver",
    "MeterRigError",
    "MeterRigRunFailed",
    "MeterRigRunResult",
]

#: Run outcomes that raise: everything but ``passed`` (``rig run`` exits non-zero on them).
FAILING_OUTCOMES = ("failed", "inconclusive", "stopped", "interrupted")


@target_factory.reg_resource
@attr.s(eq=False)
class MeterRig(NetworkResource):
    """One ``rig serve`` reachable over HTTP.

    Args:
        host (str): address of the rig as the exporter sees it (``NetworkResource``).
        port (int): its ``--listen`` port (default 8061).
        token_file (str): file with the API token (``--token-file`` of ``rig serve``), read by
            the client; ``None`` for a rig on loopback.
    """

    port = attr.ib(default=8061, validator=attr.validators.instance_of(int))
    token_file = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )


class MeterRigError(Exception):
    """The rig refused a request or could not be reached; the message says which and why."""


@attr.s(frozen=True)
class MeterRigRunResult:
    """A finished run: its id, outcome (``passed``, ``failed``, ``inconclusive``, ``stopped``,
    ``interrupted``), the record (``GET /runs/{id}``), and the files fetched into ``out_dir``."""

    id = attr.ib()
    outcome = attr.ib()
    record = attr.ib()
    files = attr.ib()

    @property
    def not_passed(self):
        """``[(case id, verdict, message)]`` of every case that did not pass or skip."""
        return [
            (c.get("id"), c.get("verdict"), c.get("message", ""))
            for c in self.record.get("cases", [])
            if c.get("verdict") not in ("pass", "skip")
        ]


class MeterRigRunFailed(MeterRigError):
    """A run ended other than ``passed``; ``result`` holds it, the message names each case."""

    def __init__(self, result, rig):
        self.result = result
        cases = "; ".join(f"{cid} ({v}: {m})" for cid, v, m in result.not_passed) or "no case"
        why = result.record.get("aborted")
        extra = f" ({why})" if why else ""
        super().__init__(
            f"meter-rig run {result.id} on {rig}: {result.outcome}{extra}; not passed: {cases}"
        )


def outcome_of(record):
    """The run's outcome word from its record (``outcome.outcome``; older records: summary)."""
    o = record.get("outcome")
    if isinstance(o, dict) and o.get("outcome"):
        return o["outcome"]
    if record.get("aborted"):
        return "stopped"
    verdicts = [c.get("verdict") for c in record.get("cases", [])]
    if any(v in ("fail", "error") for v in verdicts):
        return "failed"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "passed"


@target_factory.reg_driver
@attr.s(eq=False)
class MeterRigDriver(Driver):
    """Runs meter-rig conformance suites on a bound ``MeterRig``.

    Args:
        out_dir (str): where ``run()`` saves each run's files (a subdirectory per run id);
            default ``meter-rig-runs`` in the working directory.
        poll_s (float): seconds between progress polls (default 1).
        timeout_s (float): longest ``run()`` waits, seconds of wall clock; also sent as the
            run's ``max_wall_time_s`` so the rig ends it by itself if this client vanishes.
        requested_by (str): recorded with each run; default ``$CI_JOB_URL``, then
            ``user@host``.
    """

    bindings = {"rig": "MeterRig"}
    out_dir = attr.ib(default="meter-rig-runs", validator=attr.validators.instance_of(str))
    poll_s = attr.ib(default=1.0, converter=float)
    timeout_s = attr.ib(default=3600.0, converter=float)
    requested_by = attr.ib(
        default=None, validator=attr.validators.optional(attr.validators.instance_of(str))
    )

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self._base = None
        self._token = None

    def on_activate(self):
        host, port = proxymanager.get_host_and_port(self.rig)
        self._base = f"http://{host}:{port}"
        self._token = None
        if self.rig.token_file:
            try:
                with open(self.rig.token_file, encoding="utf-8") as f:
                    self._token = f.read().strip()
            except OSError as e:
                raise MeterRigError(
                    f"cannot read the token file {self.rig.token_file} of {self.rig.name}: {e}; "
                    "copy the rig's --token-file to this path on the client"
                ) from e

    def on_deactivate(self):
        self._base = None
        self._token = None

    @property
    def base_url(self):
        """``http://HOST:PORT`` of the rig after proxy resolution (active driver only)."""
        return self._base

    def _request(self, method, path, body=None, ok=(200,)):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self._base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self._token:
            req.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            if e.code in ok:
                return e.code, raw
            try:
                msg = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                msg = raw.decode(errors="replace")
            raise MeterRigError(f"{method} {self._base}{path}: HTTP {e.code}: {msg}") from e
        except OSError as e:
            raise MeterRigError(
                f"{method} {self._base}{path}: {e}; is rig serve running and is the exporter's "
                "host/port (or the SSH proxy) right?"
            ) from e

    def _json(self, method, path, body=None, ok=(200,)):
        code, raw = self._request(method, path, body, ok)
        return code, json.loads(raw)

    @Driver.check_active
    @step(result=True)
    def health(self):
        """``GET /health`` as a dict (``ok``, ``target_answers``, ``reason`` …)."""
        return self._json("GET", "/health", ok=(200, 503))[1]

    @Driver.check_active
    def wait_healthy(self, timeout_s=60.0):
        """Waits until ``/health`` says ok; raises ``MeterRigError`` with its reason after
        ``timeout_s`` seconds."""
        end = time.monotonic() + timeout_s
        while True:
            h = self.health()
            if h.get("ok"):
                return h
            if time.monotonic() > end:
                raise MeterRigError(f"{self.rig.name} is not healthy: {h.get('reason')}")
            time.sleep(self.poll_s)

    @Driver.check_active
    @step(args=["suites", "cases"])
    def run(self, suites=(), cases=(), *, paced=False, max_run_time_s=None, raise_on_fail=True):
        """Runs ``suites`` (empty: every suite) or ``cases`` and waits for the end.

        Returns a ``MeterRigRunResult``; raises ``MeterRigRunFailed`` when the outcome is not
        ``passed`` (unless ``raise_on_fail`` is false), ``MeterRigError`` when the rig refuses
        (409: a run is in progress) or cannot be reached, ``TimeoutError`` after ``timeout_s``
        (the run is then stopped with ``DELETE``).
        """
        body = {
            "suites": list(suites),
            "cases": list(cases),
            "paced": bool(paced),
            "max_run_time_s": max_run_time_s,
            "max_wall_time_s": self.timeout_s,
            "requested_by": self._who(),
        }
        _, started = self._json("POST", "/runs", body, ok=(202,))
        run_id = started["id"]
        self.logger.info("run %s started on %s (%s)", run_id, self.rig.name, self._base)
        try:
            record = self._wait(run_id)
        except BaseException:
            # a cancelled client must not leave the rig running its run
            try:
                self._request("DELETE", f"/runs/{run_id}", ok=(202, 404, 409))
                self.logger.warning("run %s: client interrupted, asked the rig to stop it", run_id)
            except MeterRigError as e:
                self.logger.warning("run %s: could not stop it: %s", run_id, e)
            raise
        result = MeterRigRunResult(
            id=run_id, outcome=outcome_of(record), record=record, files=self._fetch(run_id, record)
        )
        self.logger.info("run %s: %s %s", run_id, result.outcome, record.get("summary"))
        if raise_on_fail and result.outcome in FAILING_OUTCOMES:
            raise MeterRigRunFailed(result, self._base)
        return result

    def _who(self):
        if self.requested_by:
            return self.requested_by
        url = os.environ.get("CI_JOB_URL")
        if url:
            return url[:200]
        if os.environ.get("GITHUB_RUN_ID"):
            server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
            repo = os.environ.get("GITHUB_REPOSITORY", "")
            return f"{server}/{repo}/actions/runs/{os.environ['GITHUB_RUN_ID']}"[:200]
        return f"labgrid {os.environ.get('USER', 'user')}@{os.uname().nodename}"[:200]

    def _wait(self, run_id):
        end = time.monotonic() + self.timeout_s
        seen = 0
        while True:
            _, rec = self._json("GET", f"/runs/{run_id}")
            cases = rec.get("cases", [])
            for c in cases[seen:]:
                self.logger.info(
                    "run %s: %d/%d %s %s", run_id, cases.index(c) + 1,
                    len(rec.get("planned", [])) or len(cases), c.get("id"), c.get("verdict"),
                )
            seen = len(cases)
            if rec.get("state") != "running":
                return rec
            if time.monotonic() > end:
                raise TimeoutError(
                    f"run {run_id} on {self.rig.name} still running after {self.timeout_s} s "
                    "(raise the driver's timeout_s)"
                )
            time.sleep(self.poll_s)

    def _fetch(self, run_id, record):
        """Saves ``record.json``, ``junit.xml`` and ``report.html`` (when the rig serves it)."""
        d = os.path.join(self.out_dir, run_id)
        os.makedirs(d, exist_ok=True)
        files = {}
        with open(os.path.join(d, "record.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        files["record.json"] = os.path.join(d, "record.json")
        for name in ("junit.xml", "report.html"):
            code, raw = self._request("GET", f"/runs/{run_id}/{name}", ok=(200, 404))
            if code != 200:
                self.logger.info("run %s: the rig serves no %s", run_id, name)
                continue
            p = os.path.join(d, name)
            with open(p, "wb") as f:
                f.write(raw)
            files[name] = p
        return files


def _register_export():
    """Registers ``MeterRigExport`` with labgrid's exporter (for ``--isolated`` exporters)."""
    from labgrid.remote.exporter import ResourceExport, exports

    @attr.s(eq=False)
    class MeterRigExport(ResourceExport):
        """Exports a ``MeterRig`` with labgrid's proxy information (``proxy``,
        ``proxy_required``), so clients of an isolated exporter reach it through SSH."""

        def __attrs_post_init__(self):
            super().__attrs_post_init__()
            self.data["cls"] = "MeterRig"
            self.local = MeterRig(target=None, name=None, **self.local_params)

        def _get_params(self):
            return dict(self.local_params)

    exports["MeterRig"] = MeterRigExport
    return MeterRigExport


def main(argv=None):
    """``python3 meter_rig_labgrid.py exporter [labgrid-exporter args]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "exporter":
        print(
            "usage: meter_rig_labgrid.py exporter [labgrid-exporter options] RESOURCES.yaml",
            file=sys.stderr,
        )
        return 2
    _register_export()
    from labgrid.remote import exporter

    sys.argv = ["labgrid-exporter"] + argv[1:]
    return exporter.main()


if __name__ == "__main__":
    sys.exit(main())
