"""End-to-end latency of the scenario explorer in the browser: control change -> canvas redrawn.

    .venv/bin/python bench/bench_explorer.py --run-dir default --repeats 8
    .venv/bin/python bench/bench_explorer.py --run-dir /work/bench_data/acc_run --repeats 8

Opens ``notebooks/03_explore_scenarios.ipynb`` in a real JupyterLab in a real headless Chromium
(the harness of the tests, ``tests/lab_browser.py``), runs it, then changes every control as a
user would (keyboard on sliders, typing the seed, choosing from drop-downs, clicking). In the
page, the time of the input event is taken when it reaches the document (``performance.now()``,
capture phase), every Bokeh document change is recorded (BokehJS ``Document.on_change``), and
after each change ``requestAnimationFrame`` + ``setTimeout(0)`` marks the end of the frame that
paints it. Latency = input event -> end of the frame that painted the last change of the update
(no further change for 0.5 s). Printed: median and max per control. The frames of every report
time that the explorer sends once the controls have rested (``frames_after_s``, for the time
slider to swap in the browser) are not part of an update: a task of changes that brings an image
source with more than one row is counted apart, with the browser time it took (task start ->
end of the frame painting it).

Scrubbing: the time slider's handle gets ``--scrub-keys`` arrow presses ``--scrub-interval-ms``
apart (key repeat); printed are the frames drawn, the largest lag (slider steps between the time
drawn and the time asked for when a frame is painted), the stale frames drawn after the last key
press before the final one, and the time from the last key press to the final frame.

``--kernel``: no browser; the explorer in this process (its panels' ipywidget built, so every
Bokeh change is serialised for the browser as in a kernel) and the same control changes made on
its widgets. Printed per control: the whole reaction (median, max), its parts as the explorer
times them (``ScenarioExplorer.timings_ms``: geology, surrogate, panels incl. the Bokeh
messages' serialisation, trust banner incl. the domain check), the Bokeh changes sent and their
bytes (PATCH-DOC JSON + binary buffers).

    .venv/bin/python bench/bench_explorer.py --kernel --run-dir default --repeats 8
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import bokeh_slider, chromium_page, jupyter_lab, open_and_run_all  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "03_explore_scenarios.ipynb"
TIMEOUT_MS = 240_000
QUIET_MS = 500  # an update is over when no Bokeh change came for this long

PROBE_JS = """() => {
  const p = window.__probe = {input: null, changes: [], painted: null, frames: []};
  const mark = (e) => { if (p.input === null) p.input = performance.now(); };
  for (const type of ['keydown', 'change', 'click', 'input'])
    document.addEventListener(type, mark, true);
  // the frames of every report time arriving (after the controls rest): not an update
  p.loads = [];
  p.loaded = null;
  const surrogateTitle = () => {  // the title with the note in the image's corner (the time)
    for (const doc of Bokeh.documents) for (const m of doc.all_models)
      if (m.type === 'Figure' && m.name === 'surrogate') {
        let note = '';
        for (const r of m.renderers)
          if (r.glyph && r.glyph.type === 'Text') {
            const f = r.view.filter;  // the time slider's view: the row it shows
            const row = (f && f.type === 'IndexFilter' && f.indices) ? f.indices[0] : 0;
            note = r.data_source.data[r.glyph.text.field][row];
          }
        return `${m.title.text} ${note}`;
      }
    return null;
  };
  const isLoad = (e) => e.attr === 'data' && e.model && e.model.data && 'image' in e.model.data
    && e.model.get_length() > 1;
  let batch = null;  // the changes of one task (one message applied), classified at its end
  for (const doc of Bokeh.documents) doc.on_change((e) => {
    if (batch === null) {
      batch = {t: performance.now(), load: false, n: 0};
      setTimeout(() => {
        const b = batch;
        batch = null;
        if (b.load) {  // its cost: the task that applied it, to the end of the frame that painted it
          p.loaded = performance.now();
          requestAnimationFrame(() => setTimeout(() => {
            p.loaded = performance.now();
            p.loads.push(p.loaded - b.t);
          }, 0));
          return;
        }
        for (let i = 0; i < b.n; i++) p.changes.push(b.t);
        const title = surrogateTitle();
        requestAnimationFrame(() => setTimeout(() => {
          const now = performance.now();
          p.painted = now;
          if (p.frames.length === 0 || p.frames[p.frames.length - 1].title !== title)
            p.frames.push({title: title, painted: now});
        }, 0));
      }, 0);
    }
    batch.n += 1;
    if (isLoad(e)) batch.load = true;
  });
  return Bokeh.documents.length;
}"""
RESET_JS = (
    "() => { const p = window.__probe; p.input = null; p.changes = []; p.painted = null; p.frames = []; }"
)
STATE_JS = "() => ({input: __probe.input, changes: __probe.changes.length, first: __probe.changes[0] ?? null, last: __probe.changes.at(-1) ?? null, painted: __probe.painted, now: performance.now(), frames: __probe.frames, loads: __probe.loads, loaded: __probe.loaded})"  # noqa: E501


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


@dataclass(frozen=True)
class Update:
    """One update as the page saw it (ms): input event -> first Bokeh change (the kernel's work
    and the messages' way there), first -> last change (the rest of the update arriving and
    being applied), last change -> the end of the frame that painted it; and the changes."""

    total_ms: float
    to_first_ms: float
    first_to_last_ms: float
    to_paint_ms: float
    changes: int


def wait_for_update(page, timeout_s: float = 30.0) -> Update | None:
    """The update after an input event, once no Bokeh change came for ``QUIET_MS`` (None: none)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = page.evaluate(STATE_JS)
        if s["changes"] and s["painted"] is not None and s["painted"] >= s["last"]:
            # quiet: no change, and no frames arriving (they follow a scenario change by ~0.3 s;
            # the next input waits for them, as a person pausing between changes would)
            if s["now"] - max(s["last"], s["loaded"] or 0.0) > QUIET_MS:
                return Update(
                    s["painted"] - s["input"],
                    s["first"] - s["input"],
                    s["last"] - s["first"],
                    s["painted"] - s["last"],
                    s["changes"],
                )
        page.wait_for_timeout(50)
    return None


def slider(app, page, label: str, bokeh: bool = False):
    """One step of the ipywidgets slider ``label`` (a Bokeh slider with ``bokeh``) per call."""
    if bokeh:
        handle = bokeh_slider(app, page, label).locator(".noUi-handle")
    else:
        group = app.locator(".widget-hslider", has=page.get_by_text(label, exact=True))
        handle = group.locator(".noUi-handle")

    def change(i: int) -> None:  # one step to a value not seen before: right, left at the end
        handle.focus()
        now, high = (float(handle.get_attribute(f"aria-value{a}")) for a in ("now", "max"))
        page.keyboard.press("ArrowRight" if now < high else "ArrowLeft")

    return change


def measure(page, change, repeats: int, name: str = "") -> list[Update]:
    out = []
    for i in range(repeats):
        page.evaluate(RESET_JS)
        change(i)
        update = wait_for_update(page)
        if update is None:
            raise RuntimeError(f"changing {name!r} drew nothing within 30 s")
        out.append(update)
    return out


def scrub(page, app, keys: int, interval_ms: int, n_times: int) -> dict:
    """Press ArrowLeft ``keys`` times on the time slider from its last time (report times every
    20 d, ``n_times`` of them); the presses (page time, index asked for) and frames drawn."""
    handle = bokeh_slider(app, page, "time").locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("End")  # start from the last report time
    page.wait_for_timeout(1500)
    page.evaluate(RESET_JS)
    pressed = []  # (time in the page, index asked for)
    index = n_times - 1
    for _ in range(keys):
        page.keyboard.press("ArrowLeft")
        index -= 1
        pressed.append((page.evaluate("() => performance.now()"), index))
        page.wait_for_timeout(interval_ms)
    wait_for_update(page)
    frames = page.evaluate(STATE_JS)["frames"]
    return {"pressed": pressed, "frames": frames}


def kernel_profile(run_dir: str, repeats: int) -> None:
    """The explorer's kernel side per control (see the module docstring, ``--kernel``)."""
    from bokeh.protocol import Protocol

    from ccs_fno.widgets import ScenarioExplorer

    start = time.perf_counter()
    explorer = ScenarioExplorer.from_run(run_dir)
    assert explorer.widget is not None  # its BokehModel built: every document change is serialised
    print(f"explorer built in {time.perf_counter() - start:.1f} s")
    c = explorer.controls
    events: list = []
    explorer.views.layout.document.on_change(events.append)

    def step(widget, factor: float | None = None):
        def change(i: int) -> None:  # one step to a value not seen before (log sliders: by factor)
            if factor is not None:
                up = widget.value * factor <= 10**widget.max
                widget.value = widget.value * (factor if up else 1 / factor)
            else:
                up = widget.value + widget.step <= widget.max
                widget.value = widget.value + (widget.step if up else -widget.step)

        return change

    def param(description: str):
        return next(w for w in c.scenario_widgets() if getattr(w, "description", "") == description)

    def seed(i: int) -> None:
        c.seed.value = 1 + i

    def wells(i: int) -> None:
        explorer.wells_into_channel()

    def kind(i: int) -> None:
        c.geology.value = "gaussian" if i % 2 == 0 else "channel"

    controls = {
        "time slider": lambda i: setattr(c.time, "value", c.time.value - 1),
        "injection rate": step(c.rate),
        "injector depth": step(c.injector_depth),
        "producer depth": step(c.producer_depth),
        "channel permeability": step(param("channel (mD)"), 1.05),
        "host-rock permeability": step(param("host rock (mD)"), 1.05),
        "channel thickness": step(param("thickness (m)")),
        "geology seed": seed,
        "wells into channel": wells,
        "geology kind": kind,
    }
    gaussian = {
        "gaussian mean k": step(param("mean k (mD)"), 1.05),
        "gaussian variance": step(param("variance ln k")),
        "gaussian length": step(param("length (m)")),
        "gaussian anisotropy": step(param("anisotropy")),
        "gaussian dip": step(param("dip (deg)")),
        "gaussian covariance": lambda i: setattr(
            param("covariance"), "value", ("exponential", "matern", "gaussian")[i % 3]
        ),
    }
    rows = []
    for name, change in {**controls, **gaussian}.items():
        if name == "gaussian mean k":
            c.geology.value = "gaussian"
        totals, cpus, parts, counts, sizes = [], [], [], [], []
        for i in range(repeats):
            if name == "wells into channel":  # the wells move only after the seed moved the channel
                c.seed.value = 100 + i
            if name == "gaussian covariance":  # on a new seed: a field not generated before
                c.seed.value = 200 + i
            events.clear()
            start, cpu = time.perf_counter(), time.process_time()
            change(i)
            totals.append(1e3 * (time.perf_counter() - start))
            cpus.append(1e3 * (time.process_time() - cpu))
            parts.append(dict(getattr(explorer, "timings_ms", {})))  # older explorers: none
            counts.append(len(events))
            size = 0
            for event in events:
                message = Protocol().create("PATCH-DOC", [event])
                size += len(message.content_json) + sum(len(b.to_bytes()) for b in message.buffers)
            sizes.append(size)
        part = {
            key: statistics.median(p.get(key, 0.0) for p in parts)
            for key in ("geology", "surrogate", "panels", "trust")
        }
        rows.append(
            (name, totals, statistics.median(cpus), part, statistics.median(counts), statistics.median(sizes))
        )
    c.geology.value = "channel"
    explorer.close()
    print(f"\nexplorer kernel side, run {run_dir}, {repeats} changes per control (ms; medians but max)")
    print(
        "cpu: CPU time of this process (all its threads) for the change, median: the work, whatever the load"
    )
    head = (
        "control",
        "median",
        "max",
        "cpu",
        "geology",
        "surrogate",
        "panels",
        "trust",
        "changes",
        "kB sent",
    )
    print("  {:<24s} {:>7s} {:>7s} {:>6s} {:>8s} {:>10s} {:>7s} {:>6s} {:>8s} {:>8s}".format(*head))
    for name, totals, cpu, part, count, size in rows:
        print(
            f"  {name:<24s} {statistics.median(totals):7.1f} {max(totals):7.1f} {cpu:6.1f} "
            f"{part['geology']:8.1f} {part['surrogate']:10.1f} {part['panels']:7.1f} {part['trust']:6.1f} "
            f"{count:8.0f} {size / 1e3:8.1f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run, or "default"')
    parser.add_argument("--repeats", type=int, default=8, help="changes per control")
    parser.add_argument("--scrub-keys", type=int, default=20)
    parser.add_argument("--scrub-interval-ms", type=int, default=33)
    parser.add_argument("--kernel", action="store_true", help="the kernel side only, no browser")
    args = parser.parse_args(argv)
    run_dir = args.run_dir if args.run_dir == "default" else str(Path(args.run_dir).resolve())
    print(f"load at start: {load()}")
    if args.kernel:
        kernel_profile(run_dir, args.repeats)
        print(f"load at end: {load()}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        papermill.execute_notebook(
            NOTEBOOK,
            root / "explore.ipynb",
            parameters={"run_dir": run_dir},
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, chromium_page(lab, 1600, 1000) as page:
            page.set_default_timeout(TIMEOUT_MS)
            open_and_run_all(page, lab, "explore.ipynb", timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
            app.locator(".bk-Canvas").nth(6).wait_for()
            page.wait_for_timeout(2000)
            n_docs = page.evaluate(PROBE_JS)
            seed_box = app.locator(".widget-text", has_text="seed").locator("input")

            def seed(i: int) -> None:  # the seed box sends its value on Enter: the change starts there
                seed_box.fill(str(i + 1))
                page.evaluate(RESET_JS)  # typing the digits is not the change (fill's input events)
                seed_box.press("Enter")

            geology = app.locator(".widget-dropdown select").first

            def kind(i: int) -> None:
                geology.select_option("gaussian" if i % 2 == 0 else "channel")

            def wells(i: int) -> None:
                app.locator("button", has_text="wells into channel").click()

            channel_controls = {
                "time slider": slider(app, page, "time", bokeh=True),
                "injection rate": slider(app, page, "rate (m³/day)"),
                "injector depth": slider(app, page, "inj. depth (m)"),
                "producer depth": slider(app, page, "prod. depth (m)"),
                "channel permeability": slider(app, page, "channel (mD)"),
                "host-rock permeability": slider(app, page, "host rock (mD)"),
                "channel thickness": slider(app, page, "thickness (m)"),
                "geology seed": seed,
                "wells into channel": wells,
                "geology kind": kind,
            }
            results = {}
            for name, change in channel_controls.items():
                if name == "wells into channel":  # moves only after the seed moved the channel
                    results[name] = []
                    for i in range(args.repeats):
                        seed(100 + i)
                        wait_for_update(page)
                        results[name] += measure(page, change, 1)
                    continue
                results[name] = measure(page, change, args.repeats, name)
            geology.select_option("gaussian")
            wait_for_update(page)
            for label, name in (
                ("mean k (mD)", "gaussian mean k"),
                ("variance ln k", "gaussian variance"),
                ("length (m)", "gaussian length"),
                ("anisotropy", "gaussian anisotropy"),
                ("dip (deg)", "gaussian dip"),
            ):
                results[name] = measure(page, slider(app, page, label), args.repeats, name)
            covariance = app.locator(".widget-dropdown", has_text="covariance").locator("select")
            options = covariance.locator("option").all_inner_texts()
            results["gaussian covariance"] = []
            for i in range(args.repeats):  # each on a new seed: a field not generated before
                seed(200 + i)
                wait_for_update(page)
                # the next model each time (measure passes 0: the loop's i picks the option)
                change = lambda _, k=i: covariance.select_option(options[(k + 1) % len(options)])  # noqa: E731
                results["gaussian covariance"] += measure(page, change, 1)
            geology.select_option("channel")
            wait_for_update(page)
            scrubbed = scrub(page, app, args.scrub_keys, args.scrub_interval_ms, n_times=51)
            loads = page.evaluate(STATE_JS)["loads"]
            print(f"load at end: {load()}")

    print(f"\nexplorer end-to-end latency in JupyterLab + Chromium, run {run_dir} ({n_docs} Bokeh document)")
    print("input event -> frame painted with the update's last change; repeats per control:", args.repeats)
    print("medians of its parts: input -> first Bokeh change, first -> last change, last change -> painted")
    head = ("control", "median ms", "max ms", "->first", "first->last", "->painted", "changes")
    print("  {:<26s} {:>10s} {:>8s} {:>8s} {:>12s} {:>10s} {:>8s}".format(*head))
    for name, updates in results.items():
        total = [u.total_ms for u in updates]
        parts = [
            statistics.median(getattr(u, part) for u in updates)
            for part in ("to_first_ms", "first_to_last_ms", "to_paint_ms", "changes")
        ]
        print(
            f"  {name:<26s} {statistics.median(total):10.0f} {max(total):8.0f} {parts[0]:8.0f} "
            f"{parts[1]:12.0f} {parts[2]:10.0f} {parts[3]:8.0f}"
        )
    pressed, frames = scrubbed["pressed"], scrubbed["frames"]

    def shown(frame) -> int:
        t = float(re.search(r"at ([\d.]+) d", frame["title"]).group(1))
        return int(round(t / 20.0))

    lags = []
    for frame in frames:
        asked = [index for when, index in pressed if when <= frame["painted"]]
        if asked:
            lags.append(shown(frame) - asked[-1])
    last_press = pressed[-1][0]
    after = [f for f in frames if f["painted"] > last_press]
    # the press's time is read after Playwright's press returns: the final frame may come before it
    final = max(frames[-1]["painted"] - last_press, 0.0) if frames else float("nan")
    print(
        f"\ntime-slider scrub: {len(pressed)} key presses {args.scrub_interval_ms} ms apart; "
        f"{len(frames)} frames drawn; largest lag {max(lags) if lags else 0} steps; "
        f"stale frames after the last press: {max(len(after) - 1, 0)}; "
        f"last press -> final frame {final:.0f} ms (final frame: {frames[-1]['title'] if frames else None})"
    )
    if loads:
        print(
            f"frames of every report time, sent {len(loads)} times after the controls rested: the browser "
            f"took {statistics.median(loads):.0f} ms (median; max {max(loads):.0f}) to apply and paint them"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
