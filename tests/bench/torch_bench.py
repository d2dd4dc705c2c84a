#!/usr/bin/python3
"""PyTorch side of the engine benchmark: the same cases as engine_bench.

Times Debian PyTorch 1.13 (fp32, NCHW, torch.no_grad(), eval mode) on the
seed's separableconv module at the foundation issue's six shapes, on the
MobileNet-v1 body (13 separable blocks with ReLU) and on a block with depth
multiplier 1-3 (24->40, 5x5, stride 2, ReLU6), and prints one JSON list
of {"name", "median_ms", "min_ms", "iterations"} on stdout. Case names match
engine_bench's benchmark names without the layout suffix.
"""
import argparse
import json
import re
import statistics
import sys
import time

import torch
from torch import nn


class SeparableConv(nn.Module):
    """The seed's module, with the optional ReLUs of MobileNet's blocks."""

    def __init__(self, in_ch, out_ch, stride, relu=False):
        super().__init__()
        self.depth_conv = nn.Conv2d(in_ch, in_ch, kernel_size=3, stride=stride, padding=1,
                                    groups=in_ch)
        self.point_conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, padding=0, groups=1)
        self.relu = relu

    def forward(self, x):
        x = self.depth_conv(x)
        if self.relu:
            x = torch.relu(x)
        x = self.point_conv(x)
        if self.relu:
            x = torch.relu(x)
        return x


class DepthMultiplierBlock(nn.Module):
    """Depthwise 5x5 stride 2 with `dm` outputs per channel, ReLU6, pointwise, ReLU6."""

    def __init__(self, in_ch, out_ch, dm):
        super().__init__()
        self.depth_conv = nn.Conv2d(in_ch, in_ch * dm, kernel_size=5, stride=2, padding=2,
                                    groups=in_ch)
        self.point_conv = nn.Conv2d(in_ch * dm, out_ch, kernel_size=1)

    def forward(self, x):
        return nn.functional.relu6(self.point_conv(nn.functional.relu6(self.depth_conv(x))))


def mobilenet_body():
    blocks = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
              (256, 512, 2)] + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    return nn.Sequential(*[SeparableConv(i, o, s, relu=True) for i, o, s in blocks])


def cases():
    for n in (1, 16):
        for cin, cout, hw in ((32, 64, 112), (128, 128, 56), (512, 512, 14)):
            yield f"sepconv/{n}x{cin}-{cout}x{hw}", lambda c=cin, o=cout: SeparableConv(c, o, 1), (
                n, cin, hw, hw)
    for n in (1, 8):
        yield f"mobilenet_body/{n}x32x112", mobilenet_body, (n, 32, 112, 112)
    for n, dm in ((1, 1), (1, 2), (1, 3), (16, 2)):
        yield (f"sepconv_dm/{n}x24-40x56_k5s2dm{dm}",
               lambda d=dm: DepthMultiplierBlock(24, 40, d), (n, 24, 56, 56))


def time_case(module, shape, min_time):
    x = torch.randn(*shape)
    with torch.no_grad():
        # Warm-up: oneDNN primitive creation and allocator caches.
        start = time.perf_counter()
        for i in range(100):
            module(x)
            if i >= 3 and time.perf_counter() - start > min_time / 4:
                break
        times = []
        start = time.perf_counter()
        while len(times) < 10 or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min_time", type=float, default=0.5, help="seconds per case")
    parser.add_argument("--filter", default="", help="regex on case names")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for name, make, shape in cases():
        if not re.search(args.filter, name):
            continue
        module = make().eval()
        times = time_case(module, shape, args.min_time)
        results.append({"name": name, "median_ms": statistics.median(times) * 1e3,
                        "min_ms": min(times) * 1e3, "iterations": len(times)})
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
