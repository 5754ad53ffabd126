"""The client as an npm package: django_bridge/static/django_bridge/js is its root, so that the
files Django serves are the files a bundler installs, with no copy of either.

``npm pack`` lists what the package ships; Node and TypeScript resolve it by its name, the way an
application that installed it does: tests/js/package.json depends on it by path (``file:``), which
npm links into tests/js/node_modules. TypeScript (a dev dependency there) checks an example that
uses the whole API, as a bundler and as Node resolve the package, and must refuse wrong calls;
esbuild (another) bundles it as a web application's build would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import django_bridge
import ws4redis_tornado

from .node_packages import JS_TESTS, NODE_MODULES, REPO_ROOT, install_dev_dependencies

PACKAGE_ROOT = REPO_ROOT / "django_bridge" / "static" / "django_bridge" / "js"
TYPESCRIPT = JS_TESTS / "typescript"
SHIPPED = {"package.json", "ws4redis.js", "ws4redis.mjs", "ws4redis.d.ts", "ws4redis.d.mts"}
TSC_CONFIGS = ("tsconfig.json", "tsconfig.node.json")
TIMEOUT = 120

pytestmark = pytest.mark.timeout(TIMEOUT * 2)

WRONG_CALLS = """\
import WS4Redis from 'ws4redis-tornado';

const ws = WS4Redis({ uri: 'ws://localhost/ws/', control: true });
ws.subscribe('chat', 'broadcast', () => {});
ws.publish('chat', 'everyone', 'Hello');
WS4Redis({ uri: 'ws://localhost/ws/', recovr: true });
ws.unsubscribe('chat', ['broadcast']).then((reply) => reply.audiences);
ws.subscribe('lobby', ['broadcast'], null, { presense: true });
ws.subscribe('lobby', ['broadcast'], null, { presence: true, joined: (user: number) => user });
"""
WRONG_CALL_ERRORS = [
    "wrong.ts(4,22): error TS2345",  # audiences must be an array
    "wrong.ts(5,20): error TS2345",  # no such audience
    "wrong.ts(6,39): error TS2561",  # no such option
    "wrong.ts(7,55): error TS18047",  # the reply is null when the client was not connected
    "wrong.ts(8,46): error TS2561",  # no such subscribe() option
    "wrong.ts(9,62): error TS2322",  # joined gets the user's name
]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    tool("npm")
    install_dev_dependencies()
    return NODE_MODULES


def package_json() -> dict:
    return json.loads((PACKAGE_ROOT / "package.json").read_text())


def tsc(node_modules: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return run([tool("node"), str(node_modules / "typescript" / "bin" / "tsc"), "-p", str(config)], cwd=config.parent)


def test_npm_pack_lists_exactly_the_client_its_module_and_their_types() -> None:
    result = run([tool("npm"), "pack", "--dry-run", "--json"], cwd=PACKAGE_ROOT)
    assert result.returncode == 0, result.stderr
    (packed,) = json.loads(result.stdout)
    assert {file["path"] for file in packed["files"]} == SHIPPED
    assert packed["name"] == "ws4redis-tornado"


def test_the_package_has_the_python_packages_version() -> None:
    assert package_json()["version"] == ws4redis_tornado.__version__ == django_bridge.__version__


def test_every_entry_point_names_a_shipped_file() -> None:
    package = package_json()
    exports = package["exports"]["."]
    targets = [package["main"], package["module"], package["types"]]
    targets += [path for condition in exports.values() for path in condition.values()]
    assert {target.removeprefix("./") for target in targets} <= SHIPPED
    assert exports["import"]["default"] == package["module"] == "./ws4redis.mjs"
    assert exports["require"]["default"] == package["main"] == "./ws4redis.js"
    assert exports["require"]["types"] == package["types"] == "./ws4redis.d.ts"
    assert list(exports["import"]) == ["types", "default"], "types must come first to be used"


def test_node_resolves_the_package_by_name_to_one_client(node_modules: Path) -> None:
    script = """
        const viaRequire = require('ws4redis-tornado');
        import('ws4redis-tornado').then((module) => {
            console.log(JSON.stringify({
                isFunction: typeof viaRequire === 'function',
                sameDefault: module.default === viaRequire,
                sameNamed: module.WS4Redis === viaRequire,
                version: require('ws4redis-tornado/package.json').version,
            }));
        });
    """
    result = run([tool("node"), "-e", script], cwd=JS_TESTS)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer == {"isFunction": True, "sameDefault": True, "sameNamed": True, "version": package_json()["version"]}
    assert (node_modules / "ws4redis-tornado").resolve() == PACKAGE_ROOT


@pytest.mark.parametrize("config", TSC_CONFIGS)
def test_an_example_using_the_whole_api_type_checks_strictly(node_modules: Path, config: str) -> None:
    options = json.loads(_without_comments((TYPESCRIPT / config).read_text()))["compilerOptions"]
    assert options["strict"] is True and options["noEmit"] is True
    result = tsc(node_modules, TYPESCRIPT / config)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", TSC_CONFIGS)
def test_wrong_calls_do_not_type_check(node_modules: Path, tmp_path: Path, config: str) -> None:
    """The same check on wrong calls fails, naming each: the declarations do constrain callers."""
    os.symlink(node_modules, tmp_path / "node_modules")
    shutil.copy(TYPESCRIPT / "package.json", tmp_path / "package.json")
    (tmp_path / "wrong.ts").write_text(WRONG_CALLS)
    settings = json.loads(_without_comments((TYPESCRIPT / config).read_text()))
    (tmp_path / config).write_text(json.dumps({**settings, "files": ["wrong.ts"]}))
    result = tsc(node_modules, tmp_path / config)
    errors = [line.split(":", 2) for line in result.stdout.splitlines() if ": error TS" in line]
    assert result.returncode != 0
    assert [f"{where}:{code}" for where, code, _ in errors] == WRONG_CALL_ERRORS, result.stdout


BUNDLE_ENTRY = """\
import WS4Redis from 'ws4redis-tornado';

const client = WS4Redis({ uri: 'ws://example.test/ws/', control: true });
client.subscribe('chat', ['broadcast'], () => {});
globalThis.bundled = { type: typeof WS4Redis, connecting: client.is_connecting() };
"""
BUILD = """
const { metafile } = require('esbuild').buildSync({
    entryPoints: ['entry.mjs'], bundle: true, format: 'iife', platform: 'browser',
    outfile: 'bundle.js', metafile: true, logLevel: 'warning',
});
console.log(JSON.stringify(Object.keys(metafile.inputs)));
"""
RUN_BUNDLE = """
const vm = require('node:vm');
const { readFileSync } = require('node:fs');
const opened = [];
class WebSocket {
    constructor(url, protocols) { opened.push([url, protocols]); this.readyState = 0; }
}
const page = vm.createContext({ WebSocket, console });  // a page's globals: no module, no require
vm.runInContext(readFileSync(process.argv[1], 'utf8'), page);
console.log(JSON.stringify({ bundled: page.bundled, opened }));
"""


def test_a_bundler_bundles_the_package_into_a_script_that_runs_in_a_page(node_modules: Path, tmp_path: Path) -> None:
    """esbuild, as a web application's build would, resolves the package by name (its `import`
    entry point, the ES module, which loads the script) into one file with nothing left to load."""
    os.symlink(node_modules, tmp_path / "node_modules")
    (tmp_path / "entry.mjs").write_text(BUNDLE_ENTRY)
    result = run([tool("node"), "-e", BUILD], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    inputs = json.loads(result.stdout)
    assert sorted(Path(name).name for name in inputs) == ["entry.mjs", "ws4redis.js", "ws4redis.mjs"]
    result = run([tool("node"), "-e", RUN_BUNDLE, str(tmp_path / "bundle.js")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "bundled": {"type": "function", "connecting": True},
        "opened": [["ws://example.test/ws/", ["ws4redis.control"]]],
    }


def _without_comments(text: str) -> str:
    """tsconfig.json allows // comments on their own lines, which JSON does not."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))
