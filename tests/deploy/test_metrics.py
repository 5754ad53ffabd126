"""Prometheus metrics of the deployment example behind a real HAProxy.

Each runtornado process serves its own metrics on a port of its own; the prometheus.yml the stack
renders lists every one of them (and HAProxy's exporter); their sums match what clients did
through HAProxy; the Grafana dashboard and the alert rules use only series the processes expose.
With Prometheus installed, a real Prometheus scrapes the stack, loads the rules and runs every
query of the dashboard; with promtool, the config and the rules pass its checks and unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from websockets.asyncio.client import connect

from ..utils import MS, wait_until
from ..wsclient import recv
from .clients import publish
from .conftest import start_stack
from .launcher import DEPLOY_DIR, Stack, find_prometheus, has_prometheus_exporter, http_get

SOCKETS = 12
MESSAGES = 3
FACILITY = "counted"
DASHBOARD = DEPLOY_DIR / "grafana-dashboard.json"
ALERTS = DEPLOY_DIR / "alerts.yml"
ALERTS_TEST = Path(__file__).with_name("alerts_test.yml")
METRIC_NAME = re.compile(r"\bws4redis_[a-z_]+\b")
# Grafana's variables, as Grafana would expand them for a query to the stack's Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$job": "ws4redis"}


@pytest.fixture(scope="module")
def metrics_stack(haproxy: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two websocket servers and one Django server of two processes each; Prometheus too, if installed.

    Shared by the tests of this module, which compare counts before and after what they do.
    """
    options: dict[str, Any] = {"processes": 2, "prometheus": find_prometheus(), "scrape_interval": "1s"}
    stack = start_stack(haproxy, f"metrics{os.getpid()}", tmp_path_factory.mktemp("stack"), **options)
    try:
        yield stack
    finally:
        stack.stop()


# -- reading the endpoints -------------------------------------------------------------------------


def scrape(url: str) -> list[Any]:
    """The metric families at ``url``, parsed by prometheus_client's own parser."""
    answer = http_get(url, timeout=5000 * MS)
    assert answer is not None and answer[0] == 200, f"{url} answered {answer}"
    return list(text_string_to_metric_families(answer[1].decode()))


def samples(families: Iterable[Any]) -> Iterator[Sample]:
    for family in families:
        yield from family.samples


def configured_targets(stack: Stack) -> dict[str, list[str]]:
    """Each job of the rendered prometheus.yml, with its targets."""
    config = yaml.safe_load(stack.prometheus_config_path.read_text())
    return {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }


def totals(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every ws4redis sample summed over the targets of prometheus.yml, by name and labels (not ``process``)."""
    sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for target in configured_targets(stack)["ws4redis"]:
        for sample in samples(scrape(f"http://{target}/metrics")):
            labels = tuple(sorted((name, value) for name, value in sample.labels.items() if name != "process"))
            sums[(sample.name, labels)] = sums.get((sample.name, labels), 0.0) + sample.value
    return sums


def difference(after: dict, before: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def open_sockets(stack: Stack) -> float:
    return totals(stack).get(("ws4redis_sockets_open", ()), 0.0)


def exposed_names(families: Iterable[Any]) -> dict[str, set[str]]:
    """Each ws4redis family's name, with the names its samples take in a query (``_total``, ``_bucket`` ...).

    From the families, not from their samples: a counter by label has no sample before its first count.
    """
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
    return {
        family.name: {family.name + suffix for suffix in suffixes[family.type]}
        for family in families
        if family.name.startswith("ws4redis_")
    }


# -- what the dashboard and the rules query --------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the dashboard: each panel's queries and the variables' queries."""
    board = dashboard()
    expressions = [target["expr"] for panel in board["panels"] for target in panel["targets"]]
    return expressions + [variable["definition"] for variable in board["templating"]["list"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def metric_names(expressions: Iterable[str]) -> set[str]:
    return {name for expression in expressions for name in METRIC_NAME.findall(expression)}


def with_grafana_variables(expression: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expression = expression.replace(variable, value)
    assert "$" not in expression, f"a Grafana variable this test does not expand: {expression}"
    return expression


# -- the endpoints ---------------------------------------------------------------------------------


def test_each_process_serves_its_own_metrics_on_a_port_of_its_own(metrics_stack):
    for service in metrics_stack.backends:
        urls = metrics_stack.metrics_urls(service)
        assert len(urls) == 2
        for index, url in enumerate(urls):
            processes = {sample.labels["process"] for sample in samples(scrape(url))}
            assert processes == {str(index)}, f"{service.name} {url}"
    # Not on the public port: HAProxy sends /metrics to Django, which has no such page.
    status, _body = http_get(metrics_stack.url + "/metrics") or (None, b"")
    assert status == 404


def test_prometheus_yml_lists_every_process_and_haproxy_and_every_target_parses(metrics_stack, haproxy):
    targets = configured_targets(metrics_stack)
    expected = [address for service in metrics_stack.backends for address in metrics_stack.metrics_addresses(service)]
    assert sorted(targets["ws4redis"]) == sorted(expected) and len(expected) == 6
    for target in targets["ws4redis"]:
        assert "ws4redis_sockets_open" in exposed_names(scrape(f"http://{target}/metrics"))

    exporter = has_prometheus_exporter(haproxy)
    assert targets["haproxy"] == ([f"127.0.0.1:{metrics_stack.stats_port}"] if exporter else [])
    assert ("prometheus-exporter" in metrics_stack.config_path.read_text()) == exporter
    for target in targets["haproxy"]:
        names = {family.name for family in scrape(f"http://{target}/metrics")}
        assert "haproxy_process_nbthread" in names
        assert "haproxy_server_status" in names, "HAProxy reports its servers' states"


def test_the_sums_over_the_targets_match_what_clients_did_through_haproxy(metrics_stack):
    stack = metrics_stack
    before = totals(stack)
    idle = before.get(("ws4redis_sockets_open", ()), 0.0)
    messages = [f"m{number}" for number in range(MESSAGES)]

    async def scenario() -> tuple[dict, list[int]]:
        url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
        async with contextlib.AsyncExitStack() as sockets:
            clients = [await sockets.enter_async_context(connect(url, open_timeout=5000 * MS)) for _ in range(SOCKETS)]
            await wait_until(
                lambda: asyncio.to_thread(lambda: open_sockets(stack) == idle + SOCKETS),
                what=f"{SOCKETS} open sockets counted",
            )
            opened = await asyncio.to_thread(totals, stack)
            # Each process with at least one of the sockets is subscribed; Redis delivers to each once.
            receivers = [await asyncio.to_thread(publish, stack, message, FACILITY) for message in messages]
            received = await asyncio.gather(*(receive(ws, MESSAGES) for ws in clients))
            assert received == [messages] * SOCKETS
            return opened, receivers

    async def receive(ws, count: int) -> list[str]:
        return [str(await recv(ws, 5000 * MS)) for _ in range(count)]

    opened, receivers = asyncio.run(scenario())
    assert difference(opened, before, "ws4redis_sockets_open") == SOCKETS
    assert difference(opened, before, "ws4redis_handshakes_total", status="101") == SOCKETS
    after = totals(stack)
    assert difference(after, before, "ws4redis_frames_delivered_total") == SOCKETS * MESSAGES
    # leastconn spread the sockets over both websocket servers, so at least two processes got each message.
    assert min(receivers) >= 2
    assert difference(after, before, "ws4redis_redis_messages_total") == sum(receivers)
    # One unmasked text frame per message and socket: two bytes of header, then the message.
    assert difference(after, before, "ws4redis_bytes_sent_total") == SOCKETS * sum(2 + len(m) for m in messages)

    def all_closed() -> bool:
        now = totals(stack)
        closes = difference(now, before, "ws4redis_closes_total", code="1000")
        return closes == SOCKETS and now.get(("ws4redis_sockets_open", ()), 0.0) == idle

    asyncio.run(wait_until(lambda: asyncio.to_thread(all_closed), what="the clients' closes counted"))


# -- the dashboard and the alert rules -------------------------------------------------------------


def test_the_dashboard_and_the_alert_rules_use_only_series_the_processes_expose(metrics_stack):
    target = configured_targets(metrics_stack)["ws4redis"][0]
    exposed = exposed_names(scrape(f"http://{target}/metrics"))
    queryable = set().union(*exposed.values())

    used_by_dashboard = metric_names(dashboard_expressions())
    used_by_rules = metric_names(rule["expr"] for rule in alert_rules())
    assert used_by_dashboard - queryable == set(), "the dashboard queries series nobody exposes"
    assert used_by_rules - queryable == set(), "the alert rules watch series nobody exposes"
    # And the other way round: a series added to the endpoint gets a panel.
    without_panel = {family for family, names in exposed.items() if not names & used_by_dashboard}
    assert without_panel == set(), "series the dashboard does not show"
    # The rules cover what the README's "Metrics" section suggests alerting on.
    assert used_by_rules == {
        "ws4redis_redis_connected",
        "ws4redis_slow_consumer_closes_total",
        "ws4redis_fanout_seconds_bucket",
        "ws4redis_recoveries_total",
    }


def test_the_dashboard_imports_with_its_prometheus_datasource_as_an_input():
    board = dashboard()
    [source] = board["__inputs"]
    assert source == source | {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}
    grafana = next(need for need in board["__requires"] if need["id"] == "grafana")
    assert int(grafana["version"].split(".")[0]) >= 9
    assert board["id"] is None and board["uid"]

    datasource = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels = board["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == datasource, panel["title"]
        assert [target["datasource"] for target in panel["targets"]] == [datasource] * len(panel["targets"])
        assert len({target["refId"] for target in panel["targets"]}) == len(panel["targets"])
    assert [variable["datasource"] for variable in board["templating"]["list"]] == [datasource]

    cells = [
        (x, y)
        for panel in panels
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert max(x for x, _ in cells) < 24, "a panel is wider than Grafana's 24 columns"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_config_and_the_rules_and_their_unit_tests_pass(metrics_stack):
    checks = [
        ["check", "config", str(metrics_stack.prometheus_config_path)],  # the rule files it names too
        ["check", "rules", str(ALERTS)],
        ["test", "rules", str(ALERTS_TEST)],
    ]
    for check in checks:
        result = subprocess.run(["promtool", *check], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"promtool {' '.join(check)}:\n{result.stdout}{result.stderr}"


# -- a real Prometheus -----------------------------------------------------------------------------


def prometheus_api(stack: Stack, path: str, **query: str) -> Any:
    assert stack.prometheus_url is not None
    url = f"{stack.prometheus_url}api/v1/{path}?{urllib.parse.urlencode(query)}"
    answer = http_get(url, timeout=5000 * MS)
    assert answer is not None, f"{url} did not answer"
    body = json.loads(answer[1])
    assert body["status"] == "success", f"{url}: {body}"
    return body["data"]


def test_prometheus_scrapes_every_target_loads_the_rules_and_runs_every_dashboard_query(metrics_stack):
    stack = metrics_stack
    if stack.prometheus is None:
        pytest.skip("prometheus is not installed (Debian: apt-get install prometheus)")
    expected = sum(len(targets) for targets in configured_targets(stack).values())

    def targets_up() -> bool:
        active = prometheus_api(stack, "targets", state="active")["activeTargets"]
        return len(active) == expected and all(target["health"] == "up" for target in active)

    def rules_evaluated() -> list[str]:
        rules = [rule for group in prometheus_api(stack, "rules")["groups"] for rule in group["rules"]]
        return [rule["name"] for rule in rules if rule["health"] == "ok"]

    def open_sockets_in_prometheus() -> float:
        result = prometheus_api(stack, "query", query='sum(ws4redis_sockets_open{job="ws4redis"})')["result"]
        return float(result[0]["value"][1]) if result else -1.0

    async def scenario() -> None:
        await wait_until(lambda: asyncio.to_thread(targets_up), 15_000 * MS, step=200 * MS, what="every target up")
        names = await wait_until(
            lambda: asyncio.to_thread(rules_evaluated), 15_000 * MS, step=200 * MS, what="the rules evaluated"
        )
        assert sorted(names) == sorted(rule["alert"] for rule in alert_rules())
        url = f"{stack.websocket_url}{FACILITY}?subscribe-broadcast"
        async with contextlib.AsyncExitStack() as sockets:
            for _ in range(SOCKETS):
                await sockets.enter_async_context(connect(url, open_timeout=5000 * MS))
            await wait_until(
                lambda: asyncio.to_thread(lambda: open_sockets_in_prometheus() == SOCKETS),
                15_000 * MS,
                step=200 * MS,
                what=f"Prometheus counting {SOCKETS} sockets",
            )

    asyncio.run(scenario())
    for expression in dashboard_expressions():
        if expression.startswith("label_values("):  # Grafana's own function: it asks for the label's values
            values = prometheus_api(stack, "label/job/values", **{"match[]": "ws4redis_sockets_open"})
            assert "ws4redis" in values
            continue
        prometheus_api(stack, "query", query=with_grafana_variables(expression))
