"""Convert an EDM network pickle (NVlabs/edm) to csm's `edm-diffusion/1` safetensors format.

Usage:

    python3 tools/reference/convert_edm_pkl.py --edm-repo PATH/TO/edm \
        [--class-names '["airplane", "automobile", ...]'] [--provenance TEXT] [--dtype f32|f16] [--no-verify] \
        edm-cifar10-32x32-cond-vp.pkl edm-cifar10-32x32-cond-vp.safetensors

    python3 tools/reference/convert_edm_pkl.py --self-test

EDM's pickles store the network classes' source code but import `torch_utils` and `dnnlib`
from EDM's repository while loading, so `--edm-repo` must point at a checkout of
https://github.com/NVlabs/edm (it is put on sys.path). Unpickling runs code from the file:
convert only checkpoints you trust.

The converter takes the pickle's `['ema']` network (VPPrecond, VEPrecond or EDMPrecond) and
writes
  * tensors: its `state_dict()` under EDM's own names, buffers included
    (`...resample_filter`, `model.map_noise.freqs`), contiguous, float32 by default;
    `--dtype f16` stores half precision except `model.map_noise.freqs` (kept float32: the
    Fourier phases 2 pi f c_noise are too sensitive to round);
  * metadata: `format` = `edm-diffusion/1`; `edm` = JSON {"class_name": the preconditioner's
    class name, "init_kwargs": its constructor arguments} (positional `init_args` are named
    from the class signature; values that are not JSON-serialisable are dropped with a
    warning); optionally `class_names` (JSON list) and `provenance` (text; by default it
    names the source pickle).
The output is written to a temporary file beside the target and renamed into place, so an
interrupted conversion never leaves a partial file. Afterwards the file is read back with
tools/reference/edm_torch.py and D(x; sigma) is compared with the pickled network on random inputs
(per sample max|error| <= 1e-4 (1 + max|ref|)); `--no-verify` skips that, and a failed
comparison exits with status 1.

`--self-test` needs no EDM checkout: it pickles stand-in preconditioners built from
tools/reference/edm_torch.py (with random weights and an `init_kwargs` attribute, including values
JSON cannot hold), converts them in f32 and f16, reloads each file with edm_torch.load_edm
and compares D(x; sigma) with the original network.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import pickle
import sys
import tempfile

import numpy as np
import torch

TOOLS = os.path.dirname(os.path.abspath(__file__))
FORMAT = "edm-diffusion/1"
KEEP_F32 = ("model.map_noise.freqs",)


class ConversionError(RuntimeError):
    """The input cannot be converted; the message names the file."""


def to_json_value(value, path: str, dropped: list[str]):
    """A JSON-compatible copy of `value` (numpy scalars -> numbers, tuples -> lists), or a marker to drop it."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        items = [to_json_value(v, f"{path}[{i}]", dropped) for i, v in enumerate(value)]
        if any(v is _DROP for v in items):
            dropped.append(path)
            return _DROP
        return items
    if isinstance(value, dict):  # includes dnnlib.EasyDict
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                dropped.append(f"{path}.{k!r}")
                continue
            v = to_json_value(v, f"{path}.{k}", dropped)
            if v is not _DROP:
                out[k] = v
        return out
    dropped.append(path)
    return _DROP


_DROP = object()


def _positional_parameters(cls) -> list[inspect.Parameter]:
    """Named positional constructor parameters of the first class in the MRO that declares any.

    EDM's persistence wrapper (and csm's self-test stand-in) define `__init__(*args, **kwargs)`
    and forward to the real class, so the wrapper itself names nothing.
    """
    for klass in cls.__mro__:
        if "__init__" not in klass.__dict__:
            continue
        params = [p for p in inspect.signature(klass.__dict__["__init__"]).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][1:]  # drop self
        if params:
            return params
    return []


def network_config(net) -> dict:
    """{"class_name", "init_kwargs"} of an EDM preconditioner (positional arguments named via its signature)."""
    class_name = type(net).__name__
    kwargs = dict(getattr(net, "init_kwargs", None) or {})
    args = tuple(getattr(net, "init_args", None) or ())
    if args:
        params = _positional_parameters(type(net))
        if len(args) > len(params):
            raise ConversionError(f"{class_name} has {len(args)} positional init_args but its signature names "
                                  f"only {len(params)}")
        for p, v in zip(params, args):
            kwargs[p.name] = v
    dropped: list[str] = []
    init_kwargs = to_json_value(kwargs, "init_kwargs", dropped)
    for d in dropped:
        print(f"convert_edm_pkl: warning: dropping {d} (not JSON-serialisable)", file=sys.stderr)
    return {"class_name": class_name, "init_kwargs": init_kwargs}


def export_tensors(net, dtype: str) -> dict[str, torch.Tensor]:
    """The network's state_dict as contiguous CPU tensors of the requested dtype."""
    target = {"f32": torch.float32, "f16": torch.float16}[dtype]
    out = {}
    for name, t in net.state_dict().items():
        if t is None:
            continue
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32 if name in KEEP_F32 else target)
        out[name] = t.contiguous().clone()
    return out


def write_safetensors_atomic(path: str, tensors: dict, metadata: dict) -> None:
    """Write a safetensors file via a temporary file in the same folder and an atomic rename."""
    from safetensors.torch import save_file

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


SUPPORTED = ("VPPrecond", "VEPrecond", "EDMPrecond")


def load_ema(pkl_path: str) -> torch.nn.Module:
    """The `['ema']` network of an EDM training pickle (needs EDM's modules importable)."""
    try:
        with open(pkl_path, "rb") as f:
            data = pickle.load(f)
    except ModuleNotFoundError as e:
        raise ConversionError(f"{pkl_path}: unpickling needs module {e.name!r}; pass --edm-repo pointing at an "
                              f"NVlabs/edm checkout") from e
    except (OSError, pickle.UnpicklingError, EOFError) as e:
        raise ConversionError(f"{pkl_path}: cannot read pickle ({e})") from e
    if not isinstance(data, dict) or "ema" not in data:
        raise ConversionError(f"{pkl_path}: expected a dict with an 'ema' network, got {type(data).__name__}"
                              + (f" with keys {sorted(map(str, data))}" if isinstance(data, dict) else ""))
    net = data["ema"]
    if not isinstance(net, torch.nn.Module):
        raise ConversionError(f"{pkl_path}: ['ema'] is a {type(net).__name__}, not a torch.nn.Module")
    if type(net).__name__ not in SUPPORTED:
        raise ConversionError(f"{pkl_path}: ['ema'] is a {type(net).__name__}; csm reads {', '.join(SUPPORTED)}")
    return net.eval()


def convert(pkl_path: str, out_path: str, dtype: str = "f32", class_names: list[str] | None = None,
            provenance: str | None = None) -> tuple[torch.nn.Module, dict]:
    """Convert `pkl_path`'s ['ema'] network to `out_path`; returns the network and the metadata written."""
    net = load_ema(pkl_path)
    config = network_config(net)
    if class_names is not None:
        label_dim = config["init_kwargs"].get("label_dim", 0)
        if len(class_names) != label_dim:
            raise ConversionError(f"{pkl_path}: {len(class_names)} class names given but the network has "
                                  f"label_dim = {label_dim}")
    metadata = {"format": FORMAT, "edm": json.dumps(config)}
    if class_names is not None:
        metadata["class_names"] = json.dumps(class_names)
    metadata["provenance"] = provenance if provenance is not None else (
        f"converted by tools/reference/convert_edm_pkl.py from {os.path.basename(pkl_path)} ['ema'], tensors {dtype}")
    write_safetensors_atomic(out_path, export_tensors(net, dtype), metadata)
    return net, metadata


def verify(net: torch.nn.Module, out_path: str, dtype: str, seed: int = 0) -> tuple[bool, float, float]:
    """Compare D(x; sigma) of the original network with tools/reference/edm_torch.py on the converted file.

    For f16 files the original's weights are rounded to half precision first (on a copy),
    so both sides compute with the same numbers. Returns (ok, max|err|, bound) with the
    per-sample bound 1e-4 * (1 + max|ref|).
    """
    sys.path.insert(0, TOOLS)
    import edm_torch

    loaded = edm_torch.load_edm(out_path)
    ref_net = net
    if dtype == "f16":
        ref_net = copy.deepcopy(net)
        with torch.no_grad():
            for name, t in ref_net.state_dict().items():
                if t.is_floating_point() and name not in KEEP_F32:
                    t.copy_(t.half().float())
    gen = torch.Generator().manual_seed(seed)
    sigma = torch.tensor([0.01, 0.5, 3.0, 40.0])
    n, ch, res = len(sigma), loaded.img_channels, loaded.img_resolution
    x = torch.randn([n, ch, res, res], generator=gen) * (1 + sigma.reshape(-1, 1, 1, 1))
    labels = None
    if loaded.label_dim:
        labels = torch.softmax(torch.randn([n, loaded.label_dim], generator=gen) * 3, dim=1)
    with torch.inference_mode():
        ref = ref_net(x, sigma, labels).to(torch.float64)
        got = loaded(x, sigma, labels).to(torch.float64)
    err = (got - ref).abs().flatten(1).amax(1)
    bound = 1e-4 * (1 + ref.abs().flatten(1).amax(1))
    return bool((err <= bound).all()), float(err.max()), float(bound.min())


# ---------------------------------------------------------------------------------------
# Self-test


def _stand_in_class(base):
    """A subclass of an edm_torch preconditioner that records its constructor arguments like EDM's persistence."""

    class StandIn(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = args
            self._init_kwargs = kwargs

        @property
        def init_args(self):
            return self._init_args

        @property
        def init_kwargs(self):
            return dict(self._init_kwargs)

    StandIn.__name__ = base.__name__
    StandIn.__qualname__ = base.__name__
    return StandIn


def _randomize(net, seed: int) -> None:
    """Perturb every parameter and the Fourier frequencies so that every tensor affects the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * (0.5 / max(1, p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1))
        for name, b in net.named_buffers():
            if name.endswith("map_noise.freqs"):
                b.copy_(torch.randn(b.shape, generator=gen) * 16)


def self_test() -> int:
    """Round-trip stand-in networks through pickle -> convert -> edm_torch.load_edm; 0 on success."""
    sys.path.insert(0, TOOLS)
    import edm_torch

    # Stand-in classes must be importable for pickle: register them in a module namespace.
    module = sys.modules[__name__]
    cases = [
        ("VPPrecond", (28, 1), dict(label_dim=10, model_type="SongUNet", model_channels=16, channel_mult=[1, 2, 2],
                                    num_blocks=1, attn_resolutions=[7], dropout=0.13, augment_dim=9,
                                    beta_d=np.float64(19.9), use_fp16=False)),
        ("VEPrecond", (16, 3), dict(label_dim=0, model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
                                    num_blocks=1, attn_resolutions=[8], embedding_type="fourier",
                                    channel_mult_noise=2, encoder_type="residual", decoder_type="skip",
                                    resample_filter=(1, 3, 3, 1), label_dropout=0.1)),
        ("EDMPrecond", (16, 3), dict(label_dim=4, model_type="DhariwalUNet", model_channels=64,
                                     channel_mult=[1, 2], num_blocks=1, attn_resolutions=[8])),
        ("EDMPrecond", (16, 1), dict(label_dim=3, model_type="SongUNet", model_channels=16, channel_mult=[1, 2],
                                     num_blocks=1, attn_resolutions=[], encoder_type="skip",
                                     not_json=object())),  # dropped with a warning; ignored by the network below
    ]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, (class_name, args, kwargs) in enumerate(cases):
            cls = _stand_in_class(edm_torch.PRECONDITIONERS[class_name])
            setattr(module, f"_StandIn{i}", cls)
            cls.__qualname__ = f"_StandIn{i}"
            build_kwargs = {k: v for k, v in kwargs.items() if k != "not_json"}
            net = cls(*args, **build_kwargs).eval()
            if "not_json" in kwargs:
                net._init_kwargs = dict(kwargs)  # as if the original constructor had accepted it
            _randomize(net, seed=i)
            pkl = os.path.join(tmp, f"case{i}.pkl")
            with open(pkl, "wb") as f:
                pickle.dump({"ema": net, "loss_fn": None, "augment_pipe": None}, f)

            label_dim = kwargs.get("label_dim", 0)
            names = [f"class{k}" for k in range(label_dim)] or None
            for dtype in ("f32", "f16"):
                out = os.path.join(tmp, f"case{i}-{dtype}.safetensors")
                convert(pkl, out, dtype=dtype, class_names=names)
                ok, err, bound = verify(net, out, dtype, seed=100 + i)
                meta = edm_torch.read_metadata(out)
                init_kwargs = meta["edm"]["init_kwargs"]
                expected_kwargs = {k: v for k, v in kwargs.items() if k != "not_json"}
                expected_kwargs.update(img_resolution=args[0], img_channels=args[1])
                ok = (ok and meta["edm"]["class_name"] == class_name and meta.get("class_names") == names
                      and json.loads(json.dumps(to_json_value(expected_kwargs, "", []))) == init_kwargs
                      and all(f.startswith("case") for f in os.listdir(tmp)))  # no temporary files left
                desc = f"{class_name}/{kwargs['model_type']} {dtype}"
                print(f"{'PASS' if ok else 'FAIL'}  self-test {desc}: max|err| {err:.3g} (bound {bound:.3g}), "
                      f"{len(edm_torch.load_edm(out).state_dict())} tensors", flush=True)
                failures += not ok

        # Inputs that must be refused with a message naming the file.
        bad = os.path.join(tmp, "case-bad.pkl")
        for payload, expect in [({"net": None}, "'ema'"), ({"ema": torch.nn.Linear(2, 2)}, "csm reads")]:
            with open(bad, "wb") as f:
                pickle.dump(payload, f)
            try:
                convert(bad, os.path.join(tmp, "case-bad.safetensors"))
                ok, message = False, "no error"
            except ConversionError as e:
                ok, message = bad in str(e) and expect in str(e), str(e)
            print(f"{'PASS' if ok else 'FAIL'}  self-test refuses: {message}", flush=True)
            failures += not ok
    print("self-test passed" if not failures else f"self-test: {failures} case(s) FAILED", flush=True)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="EDM network pickle (.pkl)")
    parser.add_argument("output", nargs="?", help="edm-diffusion/1 safetensors file to write")
    parser.add_argument("--edm-repo", help="checkout of NVlabs/edm (provides torch_utils and dnnlib)")
    parser.add_argument("--class-names", help="JSON list of class names, stored as metadata 'class_names'")
    parser.add_argument("--provenance", help="text stored as metadata 'provenance'")
    parser.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="tensor dtype (default f32)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip comparing the pickled network with edm_torch on the written file")
    parser.add_argument("--self-test", action="store_true", help="round-trip stand-in networks; needs no EDM")
    args = parser.parse_args()

    if args.self_test:
        return self_test()
    if not args.input or not args.output:
        parser.error("input and output paths are required (or --self-test)")
    if args.edm_repo:
        if not os.path.isdir(os.path.join(args.edm_repo, "torch_utils")):
            parser.error(f"--edm-repo {args.edm_repo}: no torch_utils folder there; expected an NVlabs/edm checkout")
        sys.path.insert(0, os.path.abspath(args.edm_repo))
    class_names = None
    if args.class_names is not None:
        try:
            class_names = json.loads(args.class_names)
        except json.JSONDecodeError as e:
            parser.error(f"--class-names is not valid JSON ({e})")
        if not isinstance(class_names, list) or not all(isinstance(c, str) for c in class_names):
            parser.error("--class-names must be a JSON list of strings")
    try:
        net, meta = convert(args.input, args.output, args.dtype, class_names, args.provenance)
    except ConversionError as e:
        print(f"convert_edm_pkl: {e}", file=sys.stderr)
        return 1
    config = json.loads(meta["edm"])
    model_type = config["init_kwargs"].get("model_type", "DhariwalUNet" if config["class_name"] == "EDMPrecond"
                                           else "SongUNet")
    print(f"wrote {args.output}: {config['class_name']} ({model_type}), tensors {args.dtype}")
    if args.no_verify:
        return 0
    ok, err, bound = verify(net, args.output, args.dtype)
    print(f"{'verified' if ok else 'VERIFICATION FAILED'}: D(x; sigma) of the pickled network vs tools/reference/edm_torch.py "
          f"on {args.output}: max|err| {err:.3g} (bound {bound:.3g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
