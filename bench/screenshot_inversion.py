"""A screenshot of the inversion app in a real JupyterLab (headless Chromium), for the README.

    .venv/bin/python bench/screenshot_inversion.py --out docs/figures/inversion_app.png

Opens ``notebooks/04_invert_permeability.ipynb`` (the shipped surrogate by default, 64 x 64, a
fresh scenario of seed 9001), runs all its cells, presses Run in the app at the end (three
monitoring wells logged at 200/400/600 days and full-field snapshots at 200 and 400 days),
then "Verify with simulator", and saves the app as ``--out``. Uses the browser harness of the
tests (``tests/lab_browser.py``, through ``bench/screenshots.py``): Chromium from the system,
everything offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from screenshots import notebook_page, run_dir_parameter, save_screenshot, screenshot_parser

NOTEBOOK = "04_invert_permeability.ipynb"
TIMEOUT_MS = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = screenshot_parser(__doc__.splitlines()[0], "inversion_app.png")
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args(argv)

    def parameters(tmp: Path) -> dict:
        return {
            "run_dir": run_dir_parameter(args.run_dir),
            "iterations": args.iterations,
            "export": str(tmp / "r.nc"),
            "figures_dir": str(tmp / "figures"),
        }

    with notebook_page(NOTEBOOK, parameters, (1500, 1500), TIMEOUT_MS) as page:
        app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Verify with"))
        app.locator(".bk-Canvas").nth(7).wait_for()
        snapshots = app.locator(".widget-text", has_text="snapshots").locator("input")
        snapshots.fill("200, 400")
        snapshots.press("Enter")
        app.locator("button", has_text="Run").first.click()
        app.locator(".ccs-banner", has_text="completed: chi2/N").wait_for()
        app.locator("button", has_text="Verify with simulator").click()
        app.locator(".ccs-banner", has_text="simulator-confirmed").wait_for()
        save_screenshot(page, app, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
