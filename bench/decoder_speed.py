"""Speed of the resize-conv decoder: the folded stride-2 transposed convolution (what
``upsample: resize`` runs) against the two layers it replaces (nearest upsampling, then a 3x3
convolution) in the same process, forward + backward, and one SSAVAE step-2 iteration (the
decoder update, then the discriminator update on its handed fakes).

    python bench/decoder_speed.py [--batch 256] [--threads N] [--repeats 20]

Prints milliseconds per call and the ratio reference / folded (higher is better).
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn

from ssavae.config import build_run_config
from ssavae.data import DataInfo
from ssavae.models import Batch
from ssavae.nets import Decoder, NetSpec
from ssavae.nets.parts import ResizeConv2d
from ssavae.runs import build_model


def unfolded(dec: Decoder) -> Decoder:
    """A copy of ``dec`` whose resize convolutions run as nn.Upsample + nn.Conv2d."""
    ref = Decoder((1, 28, 28), dec.fc[0].in_features, NetSpec(upsample="resize"))
    ref.load_state_dict(dec.state_dict())
    layers = []
    for m in ref.net:
        if isinstance(m, ResizeConv2d):
            conv = nn.Conv2d(m.in_channels, m.out_channels, 3, 1, 1)
            conv.load_state_dict(m.state_dict())
            layers[-1] = nn.Upsample(scale_factor=2, mode="nearest")  # the Identity before it
            layers.append(conv)
        else:
            layers.append(m)
    ref.net = nn.Sequential(*layers)
    return ref


def ms(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dec = Decoder((1, 28, 28), 100, NetSpec(upsample="resize"))
    ref = unfolded(dec)
    z = torch.randn(a.batch, 100)
    assert torch.allclose(dec(z), ref(z), atol=1e-5), "the reference is not the same function"
    folded = ms(lambda: dec(z).sum().backward(), a.repeats)
    plain = ms(lambda: ref(z).sum().backward(), a.repeats)
    print(f"threads {torch.get_num_threads()}, batch {a.batch}, decoder forward+backward")
    print(f"  upsample + conv3x3 (reference) {plain:8.1f} ms")
    print(f"  folded transposed conv         {folded:8.1f} ms   ratio {plain / folded:.2f}x")

    model = build_model(build_run_config({"model": {"name": "ssavae"}}), DataInfo((1, 28, 28), 10, True))
    steps = model.phases()[1].steps  # dec, then disc
    x, y = torch.rand(a.batch // 2, 1, 28, 28), torch.zeros(a.batch // 2, dtype=torch.long)

    def iteration():
        b = Batch(x, y)
        for s in steps:
            model.zero_grad(set_to_none=True)
            s.loss(Batch(b.x, b.y, shared=b.shared)).loss.backward()

    print(f"  SSAVAE step-2 iteration (batch {a.batch // 2}) {ms(iteration, a.repeats // 2):8.1f} ms")


if __name__ == "__main__":
    main()
