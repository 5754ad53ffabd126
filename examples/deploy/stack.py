#!/usr/bin/env python3
"""Start the deployment example with one command: Redis, runtornado processes, HAProxy in front.

    python examples/deploy/stack.py [--port 8000] [--websocket-servers 2] [--django-servers 2] [--no-prometheus]

Then open http://127.0.0.1:8000/ in a few browser tabs and broadcast from one of them. The stack is:

- a private ``redis-server`` (the one on PATH, else the ``embedded`` extra's), unless ``--redis``
  names one; it keeps nothing on disk unless ``--redis-persistence`` is given;
- ``--websocket-servers`` processes ``manage.py runtornado --ws-only`` (websockets, health URL);
- ``--django-servers`` processes ``manage.py runtornado`` (the Django views of ``project/``);
- HAProxy on ``--port``, configured from ``haproxy.cfg.template``, with its statistics page on
  ``--stats-port`` (and its own Prometheus metrics at ``/metrics`` there, when it has the exporter);
- Prometheus on ``--prometheus-port``, if a ``prometheus`` binary is installed (Debian:
  ``apt-get install prometheus``) and ``--no-prometheus`` is not given, configured from
  ``prometheus.yml.template`` with the rules of ``alerts.yml``, its data in the work directory.

Each runtornado process listens on a loopback port of its own, so HAProxy health-checks and
balances every process separately, and serves its Prometheus metrics on a second port of its own
(``STACK_METRICS_PORT``; with ``--processes N``, process i on that port + i). The rendered
``prometheus.yml``, written whether or not Prometheus runs, lists every one of them.

The launcher runs until Ctrl-C or SIGTERM, then stops the stack in order: Prometheus, then the
runtornado processes drain (websockets closed with 1001, in-flight requests finished), then
HAProxy stops, then Redis. A runtornado process (or Prometheus) that dies meanwhile is reported
and not restarted, so you can watch HAProxy route around it; if HAProxy or Redis dies, the
launcher stops everything.

The tests in tests/deploy drive the same :class:`Stack` class.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from ws4redis_tornado.embedded import find_redis_server
from ws4redis_tornado.lifecycle import process_count

DEPLOY_DIR = Path(__file__).resolve().parent
TEMPLATE = DEPLOY_DIR / "haproxy.cfg.template"
PROMETHEUS_TEMPLATE = DEPLOY_DIR / "prometheus.yml.template"
ALERTS = DEPLOY_DIR / "alerts.yml"
WEBSOCKET_URL = "/ws/"
HEALTH_URL = "/ws4redis/health"
# runtornado serves it on its metrics port (WS4REDIS_METRICS_URL is left unset: that would also
# serve it on the websocket port, which HAProxy makes public); HAProxy's exporter on the stats port.
METRICS_URL = "/metrics"
HAPROXY_EXPORTER = f"    http-request use-service prometheus-exporter if {{ path {METRICS_URL} }}"
LOOPBACK = "127.0.0.1"

# Below Linux's ephemeral range (32768-60999), where outgoing connections take their ports.
PORT_RANGE = range(20000, 32000)

_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")
_POLL = 0.05


class StackError(RuntimeError):
    """A part of the stack did not start; the message carries the end of its log."""


# -- helpers ---------------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK, *, exclude: Iterable[int] = (), count: int = 1) -> int:
    """Return a port of PORT_RANGE that was free a moment ago and is not in ``exclude``.

    With ``count``, the ``count - 1`` ports after it were free too and are not in ``exclude``:
    a metrics port for ``--processes count``, whose process i listens on the port + i.
    """
    taken = set(exclude)
    for _ in range(200):
        first = random.randrange(PORT_RANGE.start, PORT_RANGE.stop - count + 1)
        ports = range(first, first + count)
        if taken.isdisjoint(ports) and all(_bindable(host, port) for port in ports):
            return first
    raise StackError(f"no {count} free port(s) in a row found in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} on {host}")


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR/SO_REUSEPORT: a port some process listens on, even sharing it, fails here.
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_haproxy() -> str | None:
    """Return the path of the haproxy binary, also looking where Debian puts it (not always on PATH)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin"])
    return shutil.which("haproxy", path=path)


def find_prometheus() -> str | None:
    """Return the path of the prometheus binary (Debian: apt-get install prometheus), or None."""
    return shutil.which("prometheus")


def has_prometheus_exporter(haproxy: str) -> bool:
    """Tell whether this haproxy was built with its Prometheus exporter (Debian's is)."""
    version = subprocess.run([haproxy, "-vv"], capture_output=True, text=True, timeout=30)
    return "Built with the Prometheus exporter" in version.stdout


def default_maxconn(wanted: int = 10000) -> int:
    """Return ``wanted``, or less if the file-descriptor limit does not allow it.

    HAProxy needs two descriptors per proxied connection, plus a few of its own, and refuses to
    start when it cannot raise its limit that far.
    """
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(min(wanted, (hard - 100) // 2), 100)


def render_config(template: str, values: Mapping[str, object], *, source: str = TEMPLATE.name) -> str:
    """Replace every ``{{ name }}`` of ``template``; raise KeyError naming a placeholder left without value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"{source} has {{{{ {name} }}}} but no value was given for it")
        return str(values[name])

    return _PLACEHOLDER.sub(replace, template)


def server_lines(name: str, ports: Iterable[int], host: str = LOOPBACK) -> str:
    """Return HAProxy ``server`` lines: ``server ws1 127.0.0.1:8101`` for name ``ws``."""
    return "\n".join(f"    server {name}{index} {host}:{port}" for index, port in enumerate(ports, 1))


def static_config(targets: Iterable[str], labels: Mapping[str, str]) -> str:
    """Return one entry of a prometheus.yml ``static_configs`` list, indented for the template."""
    flow = ", ".join(f"{name}: {value}" for name, value in labels.items())
    return f"      - targets: {json.dumps(list(targets))}\n        labels: {{{flow}}}"


def http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    """Return the status and body of a GET to ``url`` (error statuses too), or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None


def _answers_ping(url: str) -> bool:
    try:
        with redis.Redis.from_url(url, socket_timeout=1.0) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


# -- one child process -----------------------------------------------------------------------------


class Service:
    """A child process of the stack, in a process group of its own, its output in one log file.

    The group lets :meth:`kill` reach what the process forked (runtornado ``--processes N``).
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        log: Path,
        port: int,
        env: Mapping[str, str],
        metrics_port: int | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.port = port
        self.metrics_port = metrics_port
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was not started"
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=DEPLOY_DIR,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                process_group=0,
            )

    def poll(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum: int) -> None:
        """Signal the process itself (runtornado's supervisor forwards SIGTERM to its children)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL the group; return the exit code."""
        self.send_signal(signal.SIGTERM)
        return self.wait_or_kill(time.monotonic() + timeout)

    def wait_or_kill(self, deadline: float) -> int | None:
        """Wait until ``deadline`` (a time.monotonic() value) for the exit, then kill the group."""
        if self.process is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(max(deadline - time.monotonic(), 0))
        self.kill()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group, whatever is left of it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


# -- the stack -------------------------------------------------------------------------------------


class Stack:
    """Redis, N websocket servers, M Django servers and HAProxy, started and stopped together.

    ``check_inter``, ``fall`` and ``rise`` go into HAProxy's health checks of every server; the
    defaults suit a machine of your own, tests pass shorter ones. ``prometheus`` is the path of a
    prometheus binary to start, scraping every process each ``scrape_interval``; without it the
    stack still writes ``prometheus.yml`` for a Prometheus of your own. ``redis_persistence`` makes the
    private Redis write every change to its append-only file before answering, so that
    :meth:`restart_redis` keeps the data (history included); without it a restart empties Redis.
    Use as a context manager, or call :meth:`start` and, in a ``finally``, :meth:`stop`.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = LOOPBACK,
        stats_port: int | None = None,
        websocket_servers: int = 2,
        django_servers: int = 2,
        processes: int = 1,
        redis_url: str | None = None,
        redis_persistence: bool = False,
        prefix: str | None = None,
        check_inter: str = "2s",
        fall: int = 3,
        rise: int = 2,
        grace_period: float = 10.0,
        maxconn: int | None = None,
        haproxy: str | None = None,
        prometheus: str | None = None,
        prometheus_port: int | None = None,
        scrape_interval: str = "5s",
        workdir: Path | None = None,
    ) -> None:
        if websocket_servers < 1 or django_servers < 1:
            raise ValueError("a stack needs at least one websocket server and one Django server")
        self.host = host
        self.grace_period = grace_period
        self.processes = process_count(processes)
        self.prefix = prefix
        self.check = {"check_inter": check_inter, "fall": fall, "rise": rise, "maxconn": maxconn or default_maxconn()}
        self.haproxy_binary = haproxy
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="ws4redis-stack-")) if workdir is None else workdir
        self._ports: set[int] = set()
        self.port = self._port(port)
        self.stats_port = self._port(stats_port)
        self.prometheus_binary = prometheus
        self.prometheus_port = self._port(prometheus_port) if prometheus else None
        self.scrape_interval = scrape_interval
        self.prometheus: Service | None = None
        self.haproxy_exporter = False
        self.redis_url = redis_url
        self.redis_persistence = redis_persistence
        self.redis: Service | None = None
        self.websocket_servers = [self._runtornado(f"ws{n}", ws_only=True) for n in range(1, websocket_servers + 1)]
        self.django_servers = [self._runtornado(f"django{n}", ws_only=False) for n in range(1, django_servers + 1)]
        self.haproxy: Service | None = None

    def _port(self, wanted: int | None, count: int = 1) -> int:
        """Reserve ``wanted`` (or a free port) and the ``count - 1`` ports after it."""
        port = wanted or free_port(exclude=self._ports, count=count)
        self._ports.update(range(port, port + count))
        return port

    def _runtornado(self, name: str, *, ws_only: bool) -> Service:
        port = self._port(None)
        # Process i of --processes N serves its metrics on this port + i.
        metrics_port = self._port(None, count=self.processes)
        command = [sys.executable, str(DEPLOY_DIR / "manage.py"), "runtornado"]
        command += ["--host", LOOPBACK, "--port", str(port), "--processes", str(self.processes)]
        command += ["--grace-period", str(self.grace_period), "--xheaders"]
        if ws_only:
            command.append("--ws-only")
        log = self.workdir / f"{name}.log"
        return Service(name, command, log=log, port=port, env={}, metrics_port=metrics_port)

    # -- addresses

    @property
    def url(self) -> str:
        """The site, through HAProxy."""
        return f"http://{self.host}:{self.port}"

    @property
    def websocket_url(self) -> str:
        """The websocket URL through HAProxy; add a facility and parameters."""
        return f"ws://{self.host}:{self.port}{WEBSOCKET_URL}"

    @property
    def stats_url(self) -> str:
        return f"http://{LOOPBACK}:{self.stats_port}/"

    @property
    def prometheus_url(self) -> str | None:
        return None if self.prometheus_port is None else f"http://{LOOPBACK}:{self.prometheus_port}/"

    @property
    def config_path(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def prometheus_config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    def metrics_addresses(self, service: Service) -> list[str]:
        """``host:port`` of each process's metrics of a runtornado server, process 0 first."""
        assert service.metrics_port is not None, f"{service.name} serves no metrics"
        return [f"{LOOPBACK}:{service.metrics_port + index}" for index in range(self.processes)]

    def metrics_urls(self, service: Service) -> list[str]:
        return [f"http://{address}{METRICS_URL}" for address in self.metrics_addresses(service)]

    @property
    def backends(self) -> list[Service]:
        return [*self.websocket_servers, *self.django_servers]

    # -- lifecycle

    def start(self, timeout: float = 30.0) -> Stack:
        """Start everything and return once HAProxy reports every server up; raise StackError if not."""
        deadline = time.monotonic() + timeout
        try:
            self._start_redis(deadline)
            for service in self.backends:
                service.env = self._backend_env(service)
                service.start()
            for service in self.backends:
                self._wait_healthy(service, deadline)
                self._wait_metrics(service, deadline)
            self._start_haproxy()
            self._wait_all_up(deadline)
            self.prometheus_config_path.write_text(self.render_prometheus())
            if self.prometheus_binary is not None:
                self._start_prometheus(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus, drain the runtornado processes, then stop HAProxy and Redis; kill what does not stop."""
        if self.prometheus is not None:
            self.prometheus.stop(10)
        for service in self.backends:
            service.send_signal(signal.SIGTERM)
        # runtornado exits within its grace period; give the interpreter a few seconds to end.
        deadline = time.monotonic() + self.grace_period + 5
        for service in self.backends:
            service.wait_or_kill(deadline)
        if self.haproxy is not None:
            self.haproxy.stop(5)
        if self.redis is not None:
            self.redis.stop(5)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_redis(self, deadline: float) -> None:
        """Start a private redis-server, unless the stack was given a Redis."""
        if self.redis_url is not None:
            return
        port = self._port(None)
        self.redis_url = f"redis://{LOOPBACK}:{port}/0"
        command = [find_redis_server(), "--bind", LOOPBACK, "--port", str(port), "--save", ""]
        if self.redis_persistence:
            # "always": a write Redis acknowledged survives a restart, even one that is not a clean shutdown.
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        command += ["--dir", str(self.workdir)]
        self.redis = Service("redis", command, log=self.workdir / "redis.log", port=port, env=os.environ)
        self.redis.start()
        self._wait_redis(deadline)

    def restart_redis(self, timeout: float = 15.0) -> None:
        """Stop the private redis-server and start it again on its port; return once it answers PING.

        SIGTERM lets Redis end cleanly: with ``redis_persistence`` it reloads its append-only file
        on starting, without it comes back empty. Raise StackError if it does not exit or come back.
        """
        if self.redis is None:
            raise StackError("this stack was given a Redis (redis_url); it restarts only a Redis of its own")
        deadline = time.monotonic() + timeout
        code = self.redis.stop(timeout)
        if code != 0:
            raise StackError(f"redis-server exited with {code} on SIGTERM:\n{self.redis.tail()}")
        self.redis.start()
        self._wait_redis(deadline)

    def _wait_redis(self, deadline: float) -> None:
        assert self.redis is not None and self.redis_url is not None
        while not _answers_ping(self.redis_url):
            self._check_alive(self.redis, deadline, "answered PING")
            time.sleep(_POLL)

    def _backend_env(self, service: Service) -> dict[str, str]:
        assert self.redis_url is not None
        return {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "STACK_REDIS_URL": self.redis_url,
            "STACK_REDIS_PREFIX": self.prefix or "",
            "STACK_METRICS_PORT": str(service.metrics_port),
        }

    def _start_haproxy(self) -> None:
        if self.haproxy_binary is None:
            self.haproxy_binary = find_haproxy()
        if self.haproxy_binary is None:
            raise StackError("no haproxy binary on PATH or in /usr/sbin: install HAProxy (apt-get install haproxy)")
        self.haproxy_exporter = has_prometheus_exporter(self.haproxy_binary)
        self.config_path.write_text(self.render())
        check = subprocess.run(
            [self.haproxy_binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if check.returncode != 0:
            raise StackError(f"haproxy rejected {self.config_path}:\n{check.stdout}{check.stderr}")
        # -db: stay in the foreground, so that this launcher owns the process.
        command = [self.haproxy_binary, "-db", "-f", str(self.config_path)]
        self.haproxy = Service("haproxy", command, log=self.workdir / "haproxy.log", port=self.port, env=os.environ)
        self.haproxy.start()

    def render(self) -> str:
        """Return haproxy.cfg for this stack."""
        values = {
            **self.check,
            "bind": f"{self.host}:{self.port}",
            "stats_bind": f"{LOOPBACK}:{self.stats_port}",
            "websocket_url": WEBSOCKET_URL,
            "health_url": HEALTH_URL,
            "websocket_servers": server_lines("ws", (s.port for s in self.websocket_servers)),
            "django_servers": server_lines("django", (s.port for s in self.django_servers)),
            "prometheus_exporter": HAPROXY_EXPORTER if self.haproxy_exporter else "",
        }
        return render_config(TEMPLATE.read_text(), values)

    def render_prometheus(self) -> str:
        """Return prometheus.yml for this stack: every runtornado process, and HAProxy if it has the exporter."""
        entries = [
            static_config(
                self.metrics_addresses(service),
                {"server": service.name, "role": "websocket" if service in self.websocket_servers else "django"},
            )
            for service in self.backends
        ]
        values = {
            "scrape_interval": self.scrape_interval,
            "alerts": json.dumps(str(ALERTS)),
            "metrics_url": METRICS_URL,
            "ws4redis_targets": "\n".join(entries),
            "haproxy_targets": json.dumps([f"{LOOPBACK}:{self.stats_port}"] if self.haproxy_exporter else []),
        }
        return render_config(PROMETHEUS_TEMPLATE.read_text(), values, source=PROMETHEUS_TEMPLATE.name)

    def _start_prometheus(self, deadline: float) -> None:
        assert self.prometheus_binary is not None and self.prometheus_port is not None
        command = [self.prometheus_binary, f"--config.file={self.prometheus_config_path}"]
        command += [f"--storage.tsdb.path={self.workdir / 'prometheus'}"]
        command += [f"--web.listen-address={LOOPBACK}:{self.prometheus_port}"]
        log = self.workdir / "prometheus.log"
        self.prometheus = Service("prometheus", command, log=log, port=self.prometheus_port, env=os.environ)
        self.prometheus.start()
        while (answer := http_get(self.prometheus.url + "/-/ready")) is None or answer[0] != 200:
            self._check_alive(self.prometheus, deadline, "answered 200 on /-/ready")
            time.sleep(_POLL)

    # -- readiness and state

    def _wait_healthy(self, service: Service, deadline: float) -> None:
        while (answer := http_get(service.url + HEALTH_URL)) is None or answer[0] != 200:
            self._check_alive(service, deadline, "answered 200 on " + HEALTH_URL)
            time.sleep(_POLL)

    def _wait_metrics(self, service: Service, deadline: float) -> None:
        """Wait for every process's metrics: the health check above reaches only one of --processes N."""
        for url in self.metrics_urls(service):
            while (answer := http_get(url)) is None or answer[0] != 200:
                self._check_alive(service, deadline, "answered 200 on " + url)
                time.sleep(_POLL)

    def _wait_all_up(self, deadline: float) -> None:
        assert self.haproxy is not None
        while set(self.server_status().values()) != {"UP"}:
            self._check_alive(self.haproxy, deadline, "reported every server UP")
            time.sleep(_POLL)

    def _check_alive(self, service: Service, deadline: float, what: str) -> None:
        code = service.poll()
        if code is not None:
            raise StackError(f"{service.name} exited with {code} before it {what}:\n{service.tail()}")
        if time.monotonic() > deadline:
            raise StackError(f"{service.name} has not {what} in time:\n{service.tail()}")

    def stats(self) -> list[dict[str, str]]:
        """HAProxy's statistics, one dict per frontend, server and backend; [] if unavailable."""
        answer = http_get(self.stats_url + ";csv")
        if answer is None or answer[0] != 200:
            return []
        text = answer[1].decode().removeprefix("# ")
        return list(csv.DictReader(io.StringIO(text)))

    def server_status(self) -> dict[str, str]:
        """``{"ws1": "UP", "django1": "DOWN", ...}`` as HAProxy's health checks see the servers."""
        names = {service.name for service in self.backends}
        status = {row["svname"]: row["status"] for row in self.stats() if row["svname"] in names}
        return status or dict.fromkeys(names, "UNKNOWN")

    def health(self, service: Service) -> dict[str, Any] | None:
        """The health JSON of one runtornado process, asked directly (not through HAProxy)."""
        answer = http_get(service.url + HEALTH_URL)
        return None if answer is None else json.loads(answer[1])

    def describe(self) -> str:
        lines = [
            f"  site        {self.url}/  (HAProxy, pid {self.haproxy.pid if self.haproxy else '-'})",
            f"  statistics  {self.stats_url}",
            f"  redis       {self.redis_url}" + (f"  (redis-server, pid {self.redis.pid})" if self.redis else ""),
        ]
        if self.prometheus is not None:
            lines.append(f"  prometheus  {self.prometheus_url}  (pid {self.prometheus.pid})")
        for service in self.backends:
            role = "runtornado --ws-only" if service in self.websocket_servers else "runtornado (Django)"
            metrics = ", ".join(self.metrics_addresses(service))
            lines.append(f"  {service.name:<10}  {service.url}  {role}, pid {service.pid}, metrics {metrics}")
        lines.append(f"  logs, haproxy.cfg and prometheus.yml in {self.workdir}")
        return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=LOOPBACK, help="address HAProxy listens on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="HAProxy's port (default: %(default)s)")
    parser.add_argument("--stats-port", type=int, default=8404, help="statistics page (default: %(default)s)")
    parser.add_argument("--websocket-servers", type=int, default=2, metavar="N", help="(default: %(default)s)")
    parser.add_argument("--django-servers", type=int, default=2, metavar="N", help="(default: %(default)s)")
    parser.add_argument(
        "--processes", type=int, default=1, metavar="N", help="processes per runtornado (default: %(default)s)"
    )
    parser.add_argument("--redis", metavar="URL", help="use this Redis instead of starting a private one")
    parser.add_argument(
        "--redis-persistence",
        action="store_true",
        help="the private Redis keeps an append-only file in --workdir, so its data survives a restart",
    )
    parser.add_argument("--prefix", help="key prefix of every channel (default: none)")
    parser.add_argument("--grace-period", type=float, default=10.0, metavar="SECONDS", help="(default: %(default)s)")
    parser.add_argument("--haproxy", metavar="PATH", help="the haproxy binary (default: the one on PATH)")
    parser.add_argument(
        "--prometheus-port",
        type=int,
        default=9090,
        metavar="PORT",
        help="Prometheus, if installed (default: %(default)s)",
    )
    parser.add_argument(
        "--no-prometheus", action="store_true", help="do not start Prometheus, even if a prometheus binary is on PATH"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep logs, configs and Prometheus data here (default: a temporary one)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    prometheus = None if args.no_prometheus else find_prometheus()
    stack = Stack(
        port=args.port,
        host=args.host,
        stats_port=args.stats_port,
        websocket_servers=args.websocket_servers,
        django_servers=args.django_servers,
        processes=args.processes,
        redis_url=args.redis,
        redis_persistence=args.redis_persistence,
        prefix=args.prefix,
        grace_period=args.grace_period,
        haproxy=args.haproxy,
        prometheus=prometheus,
        prometheus_port=args.prometheus_port,
        workdir=args.workdir,
    )
    try:
        stack.start()
    except (StackError, FileNotFoundError) as exc:  # FileNotFoundError: no redis-server anywhere
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if prometheus is None and not args.no_prometheus:
        print("prometheus is not installed (apt-get install prometheus): not started", flush=True)
    print(f"ws4redis-tornado stack is up:\n{stack.describe()}\nCtrl-C stops it.", flush=True)
    try:
        return watch(stack, stop)
    finally:
        print("stopping: Prometheus, then draining the runtornado processes, then HAProxy and Redis", flush=True)
        stack.stop()
        print("stopped", flush=True)


def watch(stack: Stack, stop: threading.Event) -> int:
    """Report runtornado processes and Prometheus when they die; return 1 if HAProxy or Redis dies, 0 on ``stop``."""
    reported: set[str] = set()
    while not stop.wait(0.5):
        for service in stack.backends:
            code = service.poll()
            if code is not None and service.name not in reported:
                reported.add(service.name)
                print(f"{service.name} exited with {code}; HAProxy routes around it:\n{service.tail(5)}", flush=True)
        if stack.haproxy is not None and stack.haproxy.poll() is not None:
            print(f"haproxy exited with {stack.haproxy.poll()}:\n{stack.haproxy.tail()}", file=sys.stderr)
            return 1
        if stack.prometheus is not None and stack.prometheus.poll() is not None and "prometheus" not in reported:
            reported.add("prometheus")
            print(f"prometheus exited with {stack.prometheus.poll()}:\n{stack.prometheus.tail(5)}", flush=True)
        if stack.redis is not None and stack.redis.poll() is not None:
            print(f"redis-server exited with {stack.redis.poll()}:\n{stack.redis.tail()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
