"""The HTML report as a reader opens it: headless Chromium loads the tiny run's
report.html with every request off the machine refused, and clicks a table's column head.
Skipped, with a message, where no Chromium is installed (`.ci/run` installs Debian's)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium here (apt-get install "
                                                        "chromium); the browser tests skip")

# Clicks the first column head of every results table twice and records the column's
# values after each click, for the test to check the order.
PROBE = """<script>
(function () {
  var out = [];
  document.querySelectorAll("table.results").forEach(function (table) {
    var head = table.querySelector("thead th");
    var values = function () {
      return Array.from(table.tBodies[0].rows).map(function (r) {
        return r.cells[0].textContent.trim(); });
    };
    var before = values();
    head.click(); var first = values();
    head.click(); var second = values();
    out.push({before: before, first: first, second: second});
  });
  var pre = document.createElement("pre");
  pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", "--proxy-server=127.0.0.1:9",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=120)


def _console_problems(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line]


@pytest.fixture(scope="module")
def report(tiny_repo) -> Path:
    _, _, root = tiny_repo
    return root / "reports" / "report.html"


def test_the_report_loads_offline_without_errors_and_shows_its_answers_first(report,
                                                                            tmp_path):
    shot = tmp_path / "first-screen.png"
    run = _chromium("--window-size=1280,1000", f"--screenshot={shot}", report.as_uri(),
                    tmp=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_problems(run.stderr) == []
    assert shot.stat().st_size > 20_000  # a page was drawn, kept under the test's tmp
    dom = _chromium("--dump-dom", report.as_uri(), tmp=tmp_path).stdout
    body = dom[dom.index("<body"):]
    assert body.index('id="summary"') < body.index('id="scorecard"') < body.index(
        'class="study"')


def test_clicking_a_column_head_sorts_its_table(report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    run = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert _console_problems(run.stderr) == []
    probe = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert probe, run.stderr[-2000:]
    tables = json.loads(probe.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert tables
    reordered = 0
    for t in tables:
        assert sorted(t["first"]) == sorted(t["before"])  # the same rows, moved
        key = [_key(v) for v in t["first"]]
        assert key == sorted(key), t["first"]
        assert [_key(v) for v in t["second"]] == sorted(key, reverse=True)
        reordered += t["second"] != t["before"]
    assert reordered  # some table's rows really moved


def _key(text: str):
    """The script's order: numbers first, by value, then text."""
    try:
        return (0, float(text.replace("\u2212", "-").split(" ")[0]), "")
    except ValueError:
        return (1, 0.0, text)
