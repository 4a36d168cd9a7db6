"""Extra memory of the token-wise (FILIP) loss on one rank: naive vs chunked.

The setting measured: local batch 64, global batch 256 (4 ranks), 257 image tokens, 32 text
tokens, d = 256. One rank scores its 64 images against all 256 texts and its 64 texts against all
256 images, then back-propagates. The naive way builds the whole [64, 256, 257, 32] similarity block
(540 MB in float32) for each direction and keeps copies of it for the backward pass; the chunked
way (`training.loss`) builds blocks of at most 2**25 elements and keeps only argmax indices.

Each variant runs in a fresh subprocess; on CPU the extra memory is the peak resident set size minus
the size before the loss (ru_maxrss), on a GPU `torch.cuda.max_memory_allocated` minus the inputs.

    python -m benchmarks.token_wise_memory [--device cuda] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SHAPE = {"local": 64, "global": 256, "image_tokens": 257, "text_tokens": 32, "dim": 256}


def _inputs(device):
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    s = SHAPE

    def leaf(*shape):
        return F.normalize(torch.randn(*shape, generator=g), dim=-1).to(device).requires_grad_()

    local_image = leaf(s["local"], s["image_tokens"], s["dim"])
    all_image = leaf(s["global"], s["image_tokens"], s["dim"])
    local_text = leaf(s["local"], s["text_tokens"], s["dim"])
    all_text = leaf(s["global"], s["text_tokens"], s["dim"])
    lengths = torch.randint(3, s["text_tokens"] + 1, (s["global"],), generator=g)
    all_mask = (torch.arange(s["text_tokens"])[None, :] < lengths[:, None]).to(device)
    all_mask[:, 0] = False
    return local_image, all_image, local_text, all_text, all_mask


def naive_logits(local_image, all_image, local_text, all_text, all_mask, local_mask):
    """The textbook einsum over the whole block, both directions."""
    import torch

    block = torch.einsum("itd,jld->ijtl", local_image, all_text)  # [b, B, T, L]
    block = block.masked_fill(~all_mask[None, :, None, :], float("-inf"))
    i2t = block.max(dim=-1).values.mean(dim=-1)
    block = torch.einsum("jld,itd->jilt", local_text, all_image)  # [b, B, L, T]
    best = block.max(dim=-1).values
    m = local_mask.float()
    t2i = (best * m[:, None, :]).sum(-1) / m.sum(-1, keepdim=True)
    return i2t, t2i


def chunked_logits(local_image, all_image, local_text, all_text, all_mask, local_mask):
    from training.loss import token_wise_i2t, token_wise_t2i

    return token_wise_i2t(local_image, all_text, all_mask), token_wise_t2i(all_image, local_text, local_mask)


def run_variant(name: str, device_name: str) -> dict:
    import torch
    import torch.nn.functional as F

    device = torch.device(device_name)
    inputs = _inputs(device)
    local_mask = inputs[4][: SHAPE["local"]]
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fn = naive_logits if name == "naive" else chunked_logits
    started = time.perf_counter()
    i2t, t2i = fn(*inputs, local_mask)
    labels = torch.arange(SHAPE["local"], device=device)
    loss = (F.cross_entropy(10 * i2t, labels) + F.cross_entropy(10 * t2i, labels)) / 2
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"variant": name, "device": device_name, "extra_bytes": peak - base,
            "extra_gib": round((peak - base) / 2**30, 3), "seconds": round(time.perf_counter() - started, 2),
            "loss": float(loss)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.token_wise_memory", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--variant", choices=("naive", "chunked"), help=argparse.SUPPRESS)  # the subprocess side
    args = p.parse_args(argv)
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.device)))
        return 0
    results = []
    for variant in ("chunked", "naive"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.token_wise_memory", "--variant", variant,
                              "--device", args.device], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{out.stderr[-2000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{variant:8s} extra memory {r['extra_gib']:.3f} GiB  ({r['seconds']} s, loss {r['loss']:.4f})", flush=True)
    summary = {"shape": SHAPE, "results": results,
               "same_loss": abs(results[0]["loss"] - results[1]["loss"]) < 1e-3}
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
