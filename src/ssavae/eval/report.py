"""``report.html``: one self-contained page per run (opens from disk, no network), for a person:
what produced the run (command, the settings that differ from the defaults, time, versions), its
numbers formatted and labelled, every figure with a title and what to look for, and for a 2-D
latent space an explorer (hovering over the code map shows the image decoded there, from tiles
embedded in the page)."""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any, Optional

from ..fileio import atomic_path
from ..rundir import RunDir
from .registry import METRICS, flatten, is_percent

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}
td.num{text-align:right;font-family:monospace}td.key{color:#777;font-size:85%}
figure{display:inline-block;margin:8px;vertical-align:top;max-width:540px}
figure img{max-width:520px;border:1px solid #ddd}figcaption{font-size:90%;color:#444}figcaption b{color:#222}
#explorer{display:flex;gap:16px;align-items:flex-start}#explorer canvas{border:1px solid #ccc;cursor:crosshair}
#explorer-preview{width:168px;height:168px;image-rendering:pixelated;border:1px solid #ccc}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}"""

# a figure's file name (or how it starts) -> (title, what to look for)
FIGURES = {
    "samples_final": ("Samples", "draws from the model's prior or sampler, decoded: they should look like the "
                      "data and differ from each other (repeats mean collapse)"),
    "reconstructions_final": ("Reconstructions", "columns in pairs, labelled: a test image, then its "
                              "reconstruction; look for the class, the shape and the detail kept"),
    "samples_per_class": ("Samples per class", "one row per class, named on the left: each row should show "
                          "its class, varied within it"),
    "samples_per_cluster": ("Samples per learned cluster", "one row per cluster: a cluster should be one kind "
                            "of image"),
    "style_transfer": ("Style transfer", "first column: a test image; then its code decoded as each class "
                       "(named above): the style carries over, the class changes"),
    "latent_map": ("Code map", "test codes in the plane (2-D codes, or their first two principal components), "
                   "coloured by class; shaded: the classifier's decision regions"),
    "latent_lattice": ("Decoded latent plane", "the decoder over a regular grid spanning the test codes "
                       "(top: high z2, right: high z1); the code map above shows where each class lies"),
    "interpolations": ("Interpolations", "each row decodes the straight line between two test images' codes: "
                       "gradual change, no detour through noise"),
    "completions": ("Completions", "per row: what the model is shown, the truth, then draws of the unseen "
                    "part: each plausible, and different from the others"),
    "canvas_steps": ("The canvas, step by step", "one row per draw, one column per drawing step"),
    "training_curves": ("Training curves", "every logged loss against the step: falling, then flat; spikes "
                        "or a late climb mean instability"),
}


def fmt(key: str, v: Any) -> str:
    """A number as a person reads it: 72.6 %, 71.7-73.4 %, 12,345, 0.01234."""
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(b, (int, float)) for b in v):
        return f"{100 * v[0]:.1f}-{100 * v[1]:.1f} %" if key.endswith("ci95") else f"{v[0]:.4g}-{v[1]:.4g}"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return f"{100 * v:.1f} %" if is_percent(key) else f"{v:.4g}"


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m} min" if h else f"{m} min {s} s" if m else f"{s} s"


def _figure(path: Path) -> str:
    stem = path.stem
    epoch = re.fullmatch(r"(samples|reconstructions)_(.+)_epoch(\d+)", stem)
    if epoch:
        title = f"{epoch.group(1).capitalize()} after epoch {int(epoch.group(3))} of phase {epoch.group(2)}"
        note = FIGURES[f"{epoch.group(1)}_final"][1]
    else:
        title, note = FIGURES.get(stem, (stem.replace("_", " ").capitalize(), ""))
    data = base64.b64encode(path.read_bytes()).decode()
    kind = "gif" if path.suffix == ".gif" else "png"
    return (f'<figure><img alt="{html.escape(title)}" src="data:image/{kind};base64,{data}">'
            f"<figcaption><b>{html.escape(title)}.</b> {html.escape(note)}</figcaption></figure>")


def _numbers_table(numbers: dict, table_id: str) -> str:
    rows = []
    for k, v in numbers.items():
        if isinstance(v, str) or (isinstance(v, list) and not k.endswith("ci95")) or isinstance(v, dict):
            continue
        label = METRICS[k].label if k in METRICS and METRICS[k].label else k.rsplit(".", 1)[-1].replace("_", " ")
        rows.append(f"<tr><td>{html.escape(label)}</td><td class='key'>{html.escape(k)}</td>"
                    f"<td class='num'>{html.escape(fmt(k, v))}</td></tr>")
    return (f"<table id='{table_id}'><tr><th>measure</th><th>key</th><th>value</th></tr>{''.join(rows)}</table>"
            if rows else "")


def _config(rd: RunDir) -> Optional[dict]:
    from ..pretrained import CONFIG

    if rd.is_run():
        from ..config import load_file

        return load_file(rd.config)
    exported = rd.root / CONFIG
    return json.loads(exported.read_text())["config"] if exported.exists() else None


def _changed(config: dict) -> list[tuple[str, Any]]:
    """The settings of ``config`` that differ from its family's defaults."""
    from .. import config as config_mod

    try:
        default = config_mod.build_run_config({"model": {"name": config["model"]["name"]}}).to_dict()
    except Exception:  # a family this version does not know: show nothing rather than fail
        return []
    base = config_mod.flat_dict(default)
    return [(k, v) for k, v in config_mod.flat_dict(config).items() if base.get(k) != v and k != "model.name"]


def _header(rd: RunDir, config: Optional[dict], summary: Optional[dict]) -> str:
    import platform

    import torch

    from .. import __version__
    from ..runlog import read_metrics

    rows = []
    if config:
        data = config.get("data", {})
        rows.append(("family", config["model"]["name"]))
        rows.append(("data", data.get("name", "?") + (f", {data['labels_per_class']} labels per class"
                                                      if data.get("labels_per_class") else "")))
        rows.append(("seed", str(config.get("seed", 0))))
    if rd.command.exists():
        rows.append(("command", rd.command.read_text().strip().splitlines()[0]))
    history = read_metrics(rd.metrics)
    if history:
        rows.append(("training", f"{_duration(history[-1].get('time', 0))}, {history[-1]['step']:,} steps"))
    if summary:
        rows += [(k.replace("_", " "), str(summary[k])) for k in ("precision", "evaluated_on") if k in summary]
        trained = summary.get("ssavae_version")
        rows.append(("versions", (f"trained with ssavae {trained}; " if trained else "") + f"report by ssavae "
                     f"{__version__}, torch {torch.__version__}, Python {platform.python_version()}"))
    changed = _changed(config) if config else []
    if changed:
        rows.append(("settings changed from the defaults", ", ".join(f"{k} = {v}" for k, v in changed)))
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table id='run'>{cells}</table>"


def _explorer(rd: RunDir) -> str:
    """The code map drawn from the embedded codes; hovering shows the decoded tile of the nearest
    point of the lattice (``run_figures.explorer_data``); tests/test_report_browser.py hovers it."""
    if not rd.explorer.exists() or not rd.figure("latent_lattice").exists():
        return ""
    data = rd.explorer.read_text()
    sprite = base64.b64encode(rd.figure("latent_lattice").read_bytes()).decode()
    return (
        "<h2>Latent explorer</h2><p>Test codes coloured by class; move the pointer over the map to see the image "
        "the decoder draws at that point of the plane.</p><div id='explorer'>"
        "<canvas id='explorer-map' width='480' height='480'></canvas><div><img id='explorer-preview' alt='decoded'>"
        "<p id='explorer-at'>z = (-, -)</p><p id='explorer-legend'></p></div></div>"
        f"<img id='explorer-sprite' alt='' hidden src='data:image/png;base64,{sprite}'>"
        f"<script>var EXPLORER={data};</script><script>{_EXPLORER_JS}</script>")


_EXPLORER_JS = """(function () {
  var E = EXPLORER, c = document.getElementById('explorer-map'), g = c.getContext('2d'), W = c.width, H = c.height;
  function clamp(i) { return Math.max(0, Math.min(E.n - 1, i)); }
  function draw() {  // the test codes, coloured by class, in the lattice's frame (z2 up)
    g.fillStyle = '#fff'; g.fillRect(0, 0, W, H);
    for (var i = 0; i < E.codes.length; i++) {
      var z = E.codes[i];
      g.fillStyle = E.colors[E.labels[i]];
      var x = (z[0] - E.lo[0]) / (E.hi[0] - E.lo[0]) * W, y = (E.hi[1] - z[1]) / (E.hi[1] - E.lo[1]) * H;
      g.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
  }
  function show(fx, fy) {  // fx, fy: the pointer's place in the map, 0..1 from the top left
    var z = [E.lo[0] + fx * (E.hi[0] - E.lo[0]), E.hi[1] - fy * (E.hi[1] - E.lo[1])];
    var col = clamp(Math.round(fx * (E.n - 1))), row = clamp(Math.round(fy * (E.n - 1))), t = E.tile;
    var o = document.createElement('canvas');
    o.width = t.w; o.height = t.h;
    o.getContext('2d').drawImage(document.getElementById('explorer-sprite'), t.pad + col * (t.w + t.pad),
                                 t.pad + row * (t.h + t.pad), t.w, t.h, 0, 0, t.w, t.h);
    var img = document.getElementById('explorer-preview');
    img.src = o.toDataURL('image/png');
    img.setAttribute('data-cell', row + ',' + col);
    document.getElementById('explorer-at').textContent = 'z = (' + z[0].toFixed(2) + ', ' + z[1].toFixed(2) + ')';
  }
  c.addEventListener('mousemove', function (e) {
    var r = c.getBoundingClientRect();
    show((e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
  });
  window.addEventListener('load', function () {
    draw();
    document.getElementById('explorer-legend').innerHTML = E.classes.map(function (name, k) {
      return '<span style="color:' + E.colors[k] + '">&#9632;</span> ' + name.replace(/</g, '&lt;');
    }).join('<br>');
    var m = location.hash.match(/hover=([0-9.]+),([0-9.]+)/);  // a pointer at that place (the browser test)
    if (m) {
      var r = c.getBoundingClientRect();
      c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + parseFloat(m[1]) * r.width,
                                                   clientY: r.top + parseFloat(m[2]) * r.height}));
    }
    document.body.setAttribute('data-explorer', 'ready');
  });
})();"""


def write_report(run_dir: str | Path | RunDir) -> Path:
    rd = RunDir(run_dir)
    config, summary, evaluation = _config(rd), rd.read_json(rd.summary), rd.read_json(rd.evaluation)
    title = f"ssavae {config['model']['name'] if config else 'run'}: {rd.root.name}"
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>", _header(rd, config, summary)]
    if summary is not None:
        parts.append("<h2>Numbers at the end of training</h2>" + _numbers_table(summary, "metrics"))
    if evaluation is not None:
        numbers = {**flatten(evaluation), **{f"{g}.{k}": v for g, d in evaluation.items() if isinstance(d, dict)
                                            for k, v in d.items() if k.endswith("ci95")}}
        parts.append("<h2>Evaluation (ssavae evaluate)</h2>" + _numbers_table(numbers, "evaluation"))
    order = list(FIGURES)
    final = sorted(rd.final_figures(), key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem))
    parts.append(_explorer(rd))  # beside the figures it explains: the code map and the decoded plane
    if final:
        parts.append("<h2>Figures</h2>" + "".join(_figure(p) for p in final))
    epochs = rd.epoch_figures()
    if epochs:
        parts.append("<h2>During training</h2>" + "".join(_figure(p) for p in epochs[-4:]))
    if config:
        import yaml

        parts.append(f"<h2>Config</h2><pre>{html.escape(yaml.safe_dump(config, sort_keys=False))}</pre>")
    # Marks, once the page has loaded, how many images decoded: lets a headless browser check
    # the page (tests/test_report_browser.py) without any network or extra tooling.
    parts.append("<script>window.addEventListener('load',function(){var i=document.images,n=0,t=0;"
                 "for(var k=0;k<i.length;k++){if(i[k].hidden||i[k].id=='explorer-preview')continue;t++;"
                 "if(i[k].complete&&i[k].naturalWidth>0)n++;}"
                 "document.body.setAttribute('data-images-loaded',n);"
                 "document.body.setAttribute('data-images-total',t);});</script>")
    parts.append("</body></html>")
    with atomic_path(rd.report) as tmp:
        tmp.write_text("\n".join(parts))
    return rd.report
