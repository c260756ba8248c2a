"""The report as a person sees it: rendered by a real headless Chromium (Debian's package)."""
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_metrics_and_every_image_in_a_browser(tmp_path):
    from ssavae import cli

    from conftest import tiny_cli

    out = tmp_path / "run"
    assert cli.main(["train", *tiny_cli("ssavae", model={"latent_dim": 2}), "--out", str(out)]) == 0
    page = out / "report.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    assert "classification.accuracy" in dom and "Code map" in dom and "test accuracy" in dom
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, "the page's load handler did not run"
    assert int(total.group(1)) >= 5 and loaded.group(1) == total.group(1)
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_hovering_the_latent_explorer_shows_the_image_decoded_at_that_point(tmp_path):
    """A 2-D latent run: the report draws the code map; a pointer over it (dispatched by the page
    for ``#hover=x,y``) shows the lattice tile nearest that point of the plane, pixel for pixel."""
    import base64
    import io
    import json

    import numpy as np
    from PIL import Image

    from ssavae import cli

    from conftest import tiny_cli

    out = tmp_path / "run"
    assert cli.main(["train", *tiny_cli("vae", model={"latent_dim": 2}), "--out", str(out)]) == 0
    explorer = json.loads((out / "figures" / "latent_explorer.json").read_text())
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=10000", "--window-size=1200,2400"]
    for fx, fy in ((0.3, 0.6), (0.9, 0.1)):
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", f"{(out / 'report.html').as_uri()}#hover={fx},{fy}"],
                             capture_output=True, text=True, timeout=120).stdout
        assert 'data-explorer="ready"' in dom
        img = re.search(r'<img id="explorer-preview"[^>]*>', dom).group(0)
        n, t = explorer["n"], explorer["tile"]
        row, col = round(fy * (n - 1)), round(fx * (n - 1))
        assert f'data-cell="{row},{col}"' in img
        shown = Image.open(io.BytesIO(base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', img)
                                                       .group(1)))).convert("L")
        sprite = Image.open(out / "figures" / "latent_lattice.png").convert("L")
        x0, y0 = t["pad"] + col * (t["w"] + t["pad"]), t["pad"] + row * (t["h"] + t["pad"])
        want = np.asarray(sprite.crop((x0, y0, x0 + t["w"], y0 + t["h"])), dtype=int)
        assert shown.size == (t["w"], t["h"]) and np.abs(np.asarray(shown, dtype=int) - want).max() <= 1
