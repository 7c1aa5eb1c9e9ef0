"""Screenshot of the scenario explorer in a real JupyterLab (headless Chromium), for the README.

    .venv/bin/python bench/screenshot_explorer.py --run-dir outputs/runs/full \\
        --out docs/figures/explorer.png

Opens ``notebooks/03_explore_scenarios.ipynb`` with ``run_dir`` set, runs all its cells, presses
Simulate, and saves the explorer (controls and plots) as a PNG. Uses the browser harness of the
tests (``tests/lab_browser.py``): Chromium from the system, everything offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import chromium_page, jupyter_lab, open_and_run_all  # noqa: E402

NOTEBOOK = "03_explore_scenarios.ipynb"
TIMEOUT_MS = 180_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", required=True, help="a `ccs-fno train` run directory")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "explorer.png"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        papermill.execute_notebook(
            ROOT / "notebooks" / NOTEBOOK,
            root / NOTEBOOK,
            parameters={"run_dir": str(Path(args.run_dir).resolve())},
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, chromium_page(lab, 1400, 1800) as page:
            page.set_default_timeout(TIMEOUT_MS)
            open_and_run_all(page, lab, NOTEBOOK, timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
            app.locator(".bk-Canvas").nth(5).wait_for()
            app.locator("button", has_text="Simulate").click()
            app.locator(".widget-html", has_text="relative L2 error").wait_for()
            page.wait_for_timeout(1500)  # let every canvas repaint
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            app.screenshot(path=args.out)
        if lab.external_requests:
            print(f"warning: requests left the machine: {lab.external_requests}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
