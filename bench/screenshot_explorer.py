"""Screenshots of the scenario explorer in a real JupyterLab (headless Chromium, 1600 x 1000), for the README.

    .venv/bin/python bench/screenshot_explorer.py --run-dir default --out docs/figures/explorer.png

Opens ``notebooks/03_explore_scenarios.ipynb`` with ``run_dir`` set, runs all its cells, presses
Simulate, and saves the explorer (controls, banners and plots) as ``--out``; then switches the
geology to gaussian (outside a channel-trained model's training distribution) and saves that as
``<out>_outside.png``. Uses the browser harness of the tests (``tests/lab_browser.py``): Chromium
from the system, everything offline.
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
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run directory, or "default"')
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "explorer.png"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        papermill.execute_notebook(
            ROOT / "notebooks" / NOTEBOOK,
            root / NOTEBOOK,
            parameters={
                "run_dir": args.run_dir if args.run_dir == "default" else str(Path(args.run_dir).resolve())
            },
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, chromium_page(lab, 1600, 1000) as page:
            page.set_default_timeout(TIMEOUT_MS)
            open_and_run_all(page, lab, NOTEBOOK, timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
            app.locator(".bk-Canvas").nth(6).wait_for()
            app.locator("button", has_text="Simulate").click()
            app.locator(".ccs-banner", has_text="relative L2 error").wait_for()
            page.wait_for_timeout(1500)  # let every canvas repaint
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            app.screenshot(path=out)
            app.locator(".widget-dropdown select").first.select_option("gaussian")
            app.locator(".ccs-banner-warning", has_text="Outside").wait_for()
            page.wait_for_timeout(1500)
            outside = out.with_name(f"{out.stem}_outside{out.suffix}")
            app.screenshot(path=outside)
        if lab.external_requests:
            print(f"warning: requests left the machine: {lab.external_requests}", file=sys.stderr)
    print(f"wrote {args.out} and {outside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
