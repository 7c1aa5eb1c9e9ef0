"""A real JupyterLab server and a real headless Chromium (Playwright) for browser tests.

Used by the browser tests (``tests/test_browser.py``, ``tests/test_*_app.py``), ``bench/screenshots.py``
and ``bench/bench_explorer.py``.
Chromium is the system one (Debian package ``chromium``); Playwright's own browser downloads are
never used. Everything runs offline: JupyterLab's news and update checks are switched off and the
test records every request that leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("CCS_FNO_CHROMIUM", "/usr/bin/chromium")
# Root in a container, no GPU, no network: what Chromium needs to start and stay quiet.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
_NO_NEWS = {"fetchNews": "false", "checkForUpdates": False}


def require_chromium() -> str:
    """The Chromium executable, or an AssertionError saying how to install it."""
    if not Path(CHROMIUM).is_file():
        raise AssertionError(
            f"Chromium not found at {CHROMIUM}: install it (`apt-get install -y chromium`, done by "
            "`make browser-deps`) or point CCS_FNO_CHROMIUM at a Chromium executable"
        )
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab: ``url`` (no token), ``token``, its ``root_dir`` and ``log`` file."""

    url: str
    token: str
    root_dir: Path
    log: Path
    external_requests: list[str] = field(default_factory=list)

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}"


@contextmanager
def jupyter_lab(root_dir: Path, state_dir: Path, timeout_s: float = 120.0) -> Iterator[Lab]:
    """Start ``jupyter lab`` serving ``root_dir`` (settings, runtime files in ``state_dir``)."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = state_dir / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(_NO_NEWS))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(state_dir / "config"),
        JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(state_dir / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(state_dir / "workspaces"),
    )
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--port={port}",
        f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands from the test
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = state_dir / "jupyterlab.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if server.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {server.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"jupyter lab not ready after {timeout_s:g} s:\n{log.read_text()}"
                    ) from None
                time.sleep(0.5)
        yield Lab(url, token, root_dir, log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextmanager
def notebook_lab(
    notebook: Path, root: Path, state_dir: Path, name: str | None = None, parameters: dict | None = None
) -> Iterator[Lab]:
    """``jupyter_lab(root, state_dir)`` serving a copy of ``notebook`` named ``name`` (default: its
    own name) with papermill ``parameters`` injected and nothing run (JupyterLab runs it). Fails
    first, saying how to install it, when there is no Chromium to open it with."""
    import papermill

    require_chromium()
    papermill.execute_notebook(
        notebook,
        root / (name or notebook.name),
        parameters=parameters or {},
        prepare_only=True,
        progress_bar=False,
    )
    with jupyter_lab(root, state_dir) as lab:
        yield lab


@contextmanager
def chromium_page(lab: Lab, width: int = 1400, height: int = 1000) -> Iterator:
    """A page of a fresh headless Chromium; requests that leave 127.0.0.1 go to
    ``lab.external_requests`` (and fail: there is no network)."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})

            def record(request) -> None:
                if not request.url.startswith((lab.url, "data:", "blob:", "about:")):
                    lab.external_requests.append(request.url)

            page.on("request", record)
            yield page
        finally:
            browser.close()


KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const kernel = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return Boolean(kernel) && kernel.status === 'idle';
}"""
RUN_ALL_JS = "() => window.jupyterapp.commands.execute('notebook:run-all-cells')"


def open_and_run_all(page, lab: Lab, notebook: str, timeout_s: float = 120.0) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, and run all its cells."""
    open_notebook(page, lab, notebook, timeout_s)
    page.evaluate(RUN_ALL_JS)


# The state of every named Bokeh figure in the page (BokehJS models, as drawn): title, the texts
# of visible labels (placeholders), whether the image is drawn and how many frames its source
# holds (``frames``: one, or one per report time for a time slider), the note in an image's corner
# (at the row its view shows), the title with that note (``shown``), visible colour-bar titles,
# legend items shown, the time marker (a VSpan glyph), axis labels. Used by the browser tests and
# bench/bench_explorer.py.
BOKEH_FIGURES_JS = """() => {
  const out = {};
  if (!window.Bokeh || !Bokeh.documents) return out;
  const text = (v) => (v === null || v === undefined) ? null : (typeof v === 'string' ? v : v.value);
  for (const doc of Bokeh.documents) for (const m of doc.all_models) {
    if (m.type !== 'Figure' || !m.name) continue;
    const f = {title: m.title.text, labels: [], legend: [], colour_bars: [], marker: null, image: null};
    f.note = null;
    for (const c of m.center) {
      if (c.type === 'Label' && c.visible) f.labels.push(c.text.replace(/\\n/g, ' '));  // lines joined
      if (c.type === 'Legend' && c.visible)
        f.legend = c.items.filter((i) => i.visible).map((i) => text(i.label));
    }
    for (const r of m.renderers) {
      if (!r.glyph) continue;
      const column = (spec) => (spec && spec.field !== undefined) ? r.data_source.data[spec.field] : null;
      const filter = r.view ? r.view.filter : null;  // a time slider's view: the row it shows
      const row = (filter && filter.type === 'IndexFilter' && filter.indices && filter.indices.length)
        ? filter.indices[0] : 0;
      if (r.glyph.type === 'Image') { f.image = r.visible; f.frames = r.data_source.get_length(); }
      if (r.glyph.type === 'Text') f.note = r.visible ? column(r.glyph.text)[row] : null;
      if (r.glyph.type === 'VSpan') {
        const x = column(r.glyph.x)[row];
        f.marker = (x === null || x === undefined || Number.isNaN(x)) ? null : x;
      }
    }
    for (const c of m.right)  // a colour bar faded out (alpha 0: a placeholder) is not drawn
      if (c.type === 'ColorBar' && c.visible && c.scale_alpha > 0) f.colour_bars.push(c.title);
    f.shown = f.note ? `${f.title} ${f.note}` : f.title;  // the title as a reader takes it in
    f.xlabel = m.below.length ? m.below[0].axis_label : null;
    f.ylabel = m.left.length ? m.left[0].axis_label : null;
    out[m.name] = f;
  }
  return out;
}"""


# Keep the kernel of the notebook in front busy for ``s`` seconds (JupyterLab's kernel API): what
# changes in the page meanwhile is the browser's doing.
KERNEL_SLEEP_JS = """(s) => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel
  .requestExecute({code: `import time; time.sleep(${s})`})"""


def bokeh_slider(app, page, title: str):
    """The Bokeh slider titled ``title`` (e.g. the explorer's "time") inside ``app``: its input
    group, with the title and value in ``.bk-slider-title`` and the handle in ``.noUi-handle``."""
    return app.locator(".bk-input-group", has=page.locator(".bk-slider-title", has_text=f"{title}:"))


def bokeh_figures(page) -> dict:
    """``BOKEH_FIGURES_JS`` evaluated in ``page``: figure name -> its drawn state."""
    return page.evaluate(BOKEH_FIGURES_JS)


def open_notebook(page, lab: Lab, notebook: str, timeout_s: float = 120.0) -> None:
    """Open ``notebook`` in JupyterLab and wait for its kernel (nothing run)."""
    page.goto(lab.notebook_url(notebook))
    page.wait_for_function(KERNEL_IDLE_JS, timeout=timeout_s * 1000)


@contextmanager
def checked_page(lab: Lab, width: int, height: int, timeout_ms: float) -> Iterator:
    """``chromium_page`` with ``timeout_ms`` as its default timeout that fails, when it closes,
    on any JavaScript error the page raised."""
    errors: list[str] = []
    with chromium_page(lab, width, height) as page:
        page.set_default_timeout(timeout_ms)
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
    assert not errors, f"JavaScript errors in the page: {errors}"


def wait_for_figures(page, predicate, what: str, timeout_s: float = 120.0) -> dict:
    """Poll ``bokeh_figures(page)`` until ``predicate(figures)`` holds; return them (or fail
    saying ``what`` never showed)."""
    for _ in range(int(timeout_s * 10)):
        figures = bokeh_figures(page)
        if figures and predicate(figures):
            return figures
        page.wait_for_timeout(100)
    raise AssertionError(f"the page never showed {what}; figures now: {bokeh_figures(page)}")
