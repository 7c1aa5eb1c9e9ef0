"""What the README screenshot scripts (``bench/screenshot_*.py``) share: their common options, and a
notebook opened and run in a real JupyterLab in headless Chromium through the browser harness of
the tests (``tests/lab_browser.py``): Chromium from the system, everything offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import bokeh_figures, checked_page, notebook_lab, open_and_run_all  # noqa: E402

__all__ = ["bokeh_figures", "notebook_page", "run_dir_parameter", "save_screenshot", "screenshot_parser"]

REPAINT_MS = 1500  # what a page is given to repaint every canvas before a screenshot


def screenshot_parser(description: str, out: str) -> argparse.ArgumentParser:
    """An argument parser with ``--run-dir`` (a run directory or "default") and ``--out``
    (default ``docs/figures/<out>``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run directory, or "default"')
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / out))
    return parser


def run_dir_parameter(run_dir: str) -> str:
    """``run_dir`` as a notebook parameter: "default" as it is, a path made absolute (the notebook
    runs elsewhere)."""
    return run_dir if run_dir == "default" else str(Path(run_dir).resolve())


@contextmanager
def notebook_page(
    notebook: str,
    parameters: Callable[[Path], dict],
    window: tuple[int, int],
    timeout_ms: float,
) -> Iterator:
    """Serve ``notebooks/<notebook>`` from a temporary JupyterLab root with ``parameters(tmp)``
    injected (``lab_browser.notebook_lab``; ``tmp`` is a temporary folder that lives as long as the
    page), open it in headless Chromium (``window`` = width, height px; ``timeout_ms`` the page's
    default timeout), run all its cells and yield the page. Fails, when it closes, on any
    JavaScript error the page raised; warns on stderr about any request that left the machine."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        notebook_path = ROOT / "notebooks" / notebook
        with notebook_lab(notebook_path, root, Path(tmp) / "state", parameters=parameters(Path(tmp))) as lab:
            with checked_page(lab, *window, timeout_ms) as page:
                open_and_run_all(page, lab, notebook, timeout_s=timeout_ms / 1000)
                yield page
            if lab.external_requests:
                print(f"warning: requests left the machine: {lab.external_requests}", file=sys.stderr)


def save_screenshot(page, element, out: str | Path) -> Path:
    """Let ``page`` repaint, then save ``element`` (a locator) as the PNG ``out`` (folders made)."""
    page.wait_for_timeout(REPAINT_MS)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    element.screenshot(path=out)
    return out
