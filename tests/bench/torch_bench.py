#!/usr/bin/python3
"""PyTorch side of the engine benchmark: the same cases as engine_bench.

Times Debian PyTorch 1.13 (fp32, NCHW, torch.no_grad(), eval mode) on the
seed's separableconv module at the foundation issue's six shapes, on the
MobileNet-v1 body (13 separable blocks with ReLU) and on a block with depth
multiplier 1-3 (24->40, 5x5, stride 2, ReLU6), and prints one JSON list
of {"name", "median_ms", "min_ms", "iterations", "channels_last_median_ms",
"channels_last_min_ms"} on stdout. Case names match engine_bench's benchmark
names without the layout suffix. With --standard_conv the seed's six cases
also time the standard convolution the separable layer replaces,
nn.Conv2d(Cin, Cout, 3, padding=1), the same way, under the same keys
prefixed with "standard_".

PyTorch at its best: every case runs twice, in NCHW and in channels_last
(module and input converted; the timed call takes the NCHW input, converts it,
runs, and returns a contiguous NCHW output, so conversions are included as
for the engine). glibc is told to keep large buffers in its heap
(mallopt(M_MMAP_THRESHOLD, 32 MiB) and M_TRIM_THRESHOLD 256 MiB, through
ctypes, before torch allocates anything), which is what jemalloc or any tuned
deployment does: without it every call pays an mmap/munmap page-fault storm
for its activations.
"""
import argparse
import ctypes
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
    """(name, module factory, input shape, standard 3x3 conv factory or None)."""
    for n in (1, 16):
        for cin, cout, hw in ((32, 64, 112), (128, 128, 56), (512, 512, 14)):
            yield (f"sepconv/{n}x{cin}-{cout}x{hw}", lambda c=cin, o=cout: SeparableConv(c, o, 1),
                   (n, cin, hw, hw), lambda c=cin, o=cout: nn.Conv2d(c, o, 3, padding=1))
    for n in (1, 8):
        yield f"mobilenet_body/{n}x32x112", mobilenet_body, (n, 32, 112, 112), None
    for n, dm in ((1, 1), (1, 2), (1, 3), (16, 2)):
        yield (f"sepconv_dm/{n}x24-40x56_k5s2dm{dm}",
               lambda d=dm: DepthMultiplierBlock(24, 40, d), (n, 24, 56, 56), None)


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def keep_allocator_warm():
    """glibc keeps freed buffers up to 32 MiB (and a 256 MiB top) in its heap."""
    libc = ctypes.CDLL("libc.so.6")
    if not (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and
            libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)):
        sys.exit("mallopt failed")


def time_case(module, shape, min_time, channels_last):
    x = torch.randn(*shape)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)

        def call():
            return module(x.contiguous(memory_format=torch.channels_last)).contiguous()
    else:
        def call():
            return module(x)
    with torch.no_grad():
        # Warm-up: oneDNN primitive creation and allocator caches.
        start = time.perf_counter()
        for i in range(100):
            call()
            if i >= 3 and time.perf_counter() - start > min_time / 4:
                break
        times = []
        start = time.perf_counter()
        while len(times) < 10 or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
    return times


def timings(module, shape, min_time, prefix=""):
    """Medians and minima in NCHW and channels_last, keys prefixed by `prefix`."""
    times = time_case(module, shape, min_time, channels_last=False)
    cl_times = time_case(module, shape, min_time, channels_last=True)
    return {f"{prefix}median_ms": statistics.median(times) * 1e3,
            f"{prefix}min_ms": min(times) * 1e3, f"{prefix}iterations": len(times),
            f"{prefix}channels_last_median_ms": statistics.median(cl_times) * 1e3,
            f"{prefix}channels_last_min_ms": min(cl_times) * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min_time", type=float, default=0.5, help="seconds per case")
    parser.add_argument("--filter", default="", help="regex on case names")
    parser.add_argument("--standard_conv", action="store_true",
                        help="also time nn.Conv2d(Cin, Cout, 3, padding=1) on the seed's cases")
    args = parser.parse_args()
    keep_allocator_warm()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = []
    for name, make, shape, standard in cases():
        if not re.search(args.filter, name):
            continue
        result = {"name": name, **timings(make().eval(), shape, args.min_time)}
        if args.standard_conv and standard:
            result.update(timings(standard().eval(), shape, args.min_time, prefix="standard_"))
        results.append(result)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
