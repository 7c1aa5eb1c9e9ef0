"""Screenshots of the scenario explorer in a real JupyterLab (headless Chromium, 1600 x 1000), for the README.

    .venv/bin/python bench/screenshot_explorer.py --run-dir default --out docs/figures/explorer.png

Opens ``notebooks/03_explore_scenarios.ipynb`` with ``run_dir`` set, runs all its cells, presses
Simulate, and saves the explorer (controls, banners and plots) as ``--out``; then switches the
geology to gaussian (outside a channel-trained model's training distribution) and saves that as
``<out>_outside.png``. Uses the browser harness of the tests (``tests/lab_browser.py``, through
``bench/screenshots.py``): Chromium from the system, everything offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from screenshots import notebook_page, run_dir_parameter, save_screenshot, screenshot_parser

NOTEBOOK = "03_explore_scenarios.ipynb"
TIMEOUT_MS = 180_000


def main(argv: list[str] | None = None) -> int:
    args = screenshot_parser(__doc__.splitlines()[0], "explorer.png").parse_args(argv)
    out = Path(args.out)
    outside = out.with_name(f"{out.stem}_outside{out.suffix}")
    with notebook_page(
        NOTEBOOK, lambda tmp: {"run_dir": run_dir_parameter(args.run_dir)}, (1600, 1000), TIMEOUT_MS
    ) as page:
        app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
        app.locator(".bk-Canvas").nth(6).wait_for()
        app.locator("button", has_text="Simulate").click()
        app.locator(".ccs-banner", has_text="relative L2 error").wait_for()
        save_screenshot(page, app, out)
        app.locator(".widget-dropdown select").first.select_option("gaussian")
        app.locator(".ccs-banner-warning", has_text="Outside").wait_for()
        save_screenshot(page, app, outside)
    print(f"wrote {args.out} and {outside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
