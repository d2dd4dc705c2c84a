#!/usr/bin/python3
"""Builds depthwise-separable models in PyTorch and exports them the way users do.

Writes, under --out:
  repository/<model>/[config.pbtxt]  and  repository/<model>/<version>/model.onnx
      a model repository for `sepconv-server --model_repository`;
  cases/<model>/<version>/<tag>.input.npy and .output.npy
      inputs and PyTorch's outputs (float32, NCHW, C order) at several batch
      and spatial sizes;
  cases/manifest.tsv
      one line per case: model version tag input_npy output_npy n c h w.

Models (all seeded, model.eval(), dynamic batch and spatial axes):
  separableconv v1  the reference `separableconv(32, 64, 1)`, opset 13, Triton-style
                    config.pbtxt serving every version;
  separableconv v2  the same module with other weights, opset 11;
  mobilenet         4 MobileNet-v1-style blocks (BatchNorm with random running
                    stats, ReLU/ReLU6, strides 1 and 2, kernels 3 and 5, depth
                    multipliers 1 and 2), opset 13, BatchNormalization nodes
                    kept (folded by the server at load), no config.pbtxt;
  mobilenet_fused   the same weights, opset 11, BatchNorm folded by torch;
  mobilenet_opset9  the same, opset 9 (Clip with min/max attributes).

Run with Debian's python (/usr/bin/python3, python3-torch).
"""

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

DYNAMIC_AXES = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}}


class separableconv(nn.Module):  # noqa: N801 -- the reference module's name (docs/architecture.md)
    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.depth_conv = nn.Conv2d(in_ch, in_ch, kernel_size=3, stride=stride, padding=1,
                                    groups=in_ch)
        self.point_conv = nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=1, padding=0, groups=1)

    def forward(self, x):
        return self.point_conv(self.depth_conv(x))


def block(in_ch, out_ch, kernel, stride, dm, act, pointwise_bn=True, pointwise_act=None):
    mid = in_ch * dm
    layers = [nn.Conv2d(in_ch, mid, kernel, stride=stride, padding=kernel // 2, groups=in_ch,
                        bias=False),
              nn.BatchNorm2d(mid), act()]
    layers.append(nn.Conv2d(mid, out_ch, 1, bias=not pointwise_bn))
    if pointwise_bn:
        layers.append(nn.BatchNorm2d(out_ch))
    if pointwise_act is not None:
        layers.append(pointwise_act())
    return layers


def mobilenet_blocks():
    model = nn.Sequential(
        *block(12, 24, kernel=3, stride=1, dm=1, act=nn.ReLU6, pointwise_act=nn.ReLU6),
        *block(24, 40, kernel=5, stride=2, dm=2, act=nn.ReLU, pointwise_act=nn.ReLU),
        *block(40, 40, kernel=3, stride=1, dm=1, act=nn.ReLU6, pointwise_bn=False,
               pointwise_act=nn.ReLU6),
        *block(40, 56, kernel=5, stride=2, dm=2, act=nn.ReLU))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # random running stats, not the identity
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
                m.running_mean.normal_(0.0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def export(model, path, opset, in_ch, keep_batchnorm):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, torch.randn(1, in_ch, 16, 16), path, opset_version=opset,
                      input_names=["input"], output_names=["output"], dynamic_axes=DYNAMIC_AXES,
                      training=mode, do_constant_folding=not keep_batchnorm)


SEPARABLECONV_CONFIG = """\
# A Triton-style config: loads unchanged in Triton and in sepconv-serve.
name: "separableconv"
platform: "onnxruntime_onnx"
max_batch_size: 8
version_policy: { all { } }
input [
  {
    name: "input"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 32, -1, -1 ]
  }
]
output [
  {
    name: "output"
    data_type: TYPE_FP32
    dims: [ 64, -1, -1 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 200
  default_queue_policy { max_queue_size: 64 }
}
instance_group [ { count: 1 kind: KIND_CPU } ]
"""


def write_cases(out, name, version, model, in_ch, shapes, manifest):
    case_dir = os.path.join(out, "cases", name, str(version))
    os.makedirs(case_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(1000 + version)
    for n, h, w in shapes:
        x = torch.randn(n, in_ch, h, w, generator=gen)
        with torch.no_grad():
            y = model(x)
        tag = f"n{n}_h{h}_w{w}"
        x_path = os.path.join(case_dir, tag + ".input.npy")
        y_path = os.path.join(case_dir, tag + ".output.npy")
        np.save(x_path, x.numpy().astype("<f4"))
        np.save(y_path, y.numpy().astype("<f4"))
        manifest.append("\t".join(str(v) for v in (
            name, version, tag, os.path.relpath(x_path, os.path.join(out, "cases")),
            os.path.relpath(y_path, os.path.join(out, "cases")), n, in_ch, h, w)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output directory (created)")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    repo = os.path.join(out, "repository")
    torch.set_num_threads(1)
    manifest = []

    sep_shapes = [(1, 16, 16), (3, 33, 17), (8, 28, 28)]
    for version, seed, opset in ((1, 0, 13), (2, 1, 11)):
        torch.manual_seed(seed)
        model = separableconv(32, 64, 1).eval()
        export(model, os.path.join(repo, "separableconv", str(version), "model.onnx"), opset, 32,
               keep_batchnorm=False)
        write_cases(out, "separableconv", version, model, 32, sep_shapes, manifest)
    with open(os.path.join(repo, "separableconv", "config.pbtxt"), "w") as f:
        f.write(SEPARABLECONV_CONFIG)

    torch.manual_seed(42)
    mobilenet = mobilenet_blocks()
    mob_shapes = [(1, 16, 16), (2, 37, 23), (5, 64, 48)]
    for name, opset, keep_bn in (("mobilenet", 13, True), ("mobilenet_fused", 11, False),
                                 ("mobilenet_opset9", 9, True)):
        export(mobilenet, os.path.join(repo, name, "1", "model.onnx"), opset, 12, keep_bn)
        write_cases(out, name, 1, mobilenet, 12, mob_shapes, manifest)

    with open(os.path.join(out, "cases", "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print(f"wrote {len(manifest)} cases and {repo}", file=sys.stderr)


if __name__ == "__main__":
    main()
