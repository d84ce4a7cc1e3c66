"""The baseline for bench_model.py: what a user's own script does with AIMET, with nothing of qatdoctor.

    TARGET_PYTHON bench/_plain_pipeline.py path/to/file.py:callable [--input-shape 1,3,320,320]

Imports AIMET's pipeline (the legacy v1 modules on 1.x, the defaults on 2.x), builds the model from the same
factory, then prepare_model → QuantizationSimModel → compute_encodings → one QAT step in train mode →
fold_all_batch_norms on a copy of the original and of the prepared model. Errors are printed and the run goes on,
as qatdoctor's probe does, so both sides do the same work.
"""

import copy
import importlib
import importlib.util
import inspect
import os
import sys
import time
from pathlib import Path


def _load(spec):
    target, _, attr = spec.rpartition(":")
    if target.endswith(".py"):
        sys.path.insert(0, str(Path(target).resolve().parent))
        loader = importlib.util.spec_from_file_location("_bench_model", target)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        sys.path.insert(0, str(Path.cwd()))
        module = importlib.import_module(target)
    return getattr(module, attr)


def _tensors(value):
    if hasattr(value, "detach"):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _step(name, work):
    started = time.perf_counter()
    try:
        work()
        outcome = "ok"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
    print(f"{name}: {time.perf_counter() - started:.2f}s {outcome}", file=sys.stderr)


def main():
    spec = sys.argv[1]
    shape = None
    if "--input-shape" in sys.argv:
        shape = tuple(int(d) for d in sys.argv[sys.argv.index("--input-shape") + 1].split(","))
    import torch

    torch.set_num_threads(1)
    import aimet_torch

    version = getattr(aimet_torch, "__version__", None)
    if version is None:
        from importlib import metadata

        version = metadata.version("aimet-torch")
    from aimet_torch.batch_norm_fold import fold_all_batch_norms
    from aimet_torch.model_preparer import prepare_model
    from aimet_torch.quantsim import QuantizationSimModel

    built = _load(spec)()
    model, x = built if isinstance(built, tuple) else (built, torch.randn(shape))
    args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    state = {}
    model.train()

    def prepare():
        state["prepared"] = prepare_model(model)

    def quantsim():
        state["sim"] = QuantizationSimModel(state["prepared"], dummy_input=x)

    def encodings():
        with torch.no_grad():
            state["sim"].compute_encodings(lambda m, _: m(*args), None)

    def qat_step():
        sim_model = state["sim"].model
        sim_model.train()
        optimizer = torch.optim.SGD([p for p in sim_model.parameters() if p.requires_grad], lr=0.01)
        loss = sum(t.float().pow(2).mean() for t in _tensors(sim_model(*args)) if t.is_floating_point())
        loss.backward()
        optimizer.step()

    def fold(which):
        def work():
            folded = copy.deepcopy(which()).eval()
            if "dummy_input" in inspect.signature(fold_all_batch_norms).parameters:
                fold_all_batch_norms(folded, tuple(args[0].shape), dummy_input=x)
            else:
                fold_all_batch_norms(folded, tuple(args[0].shape))

        return work

    for name, work in (("prepare", prepare), ("quantsim", quantsim), ("compute_encodings", encodings),
                       ("qat_step", qat_step), ("fold", fold(lambda: model)),
                       ("fold_prepared", fold(lambda: state["prepared"]))):
        _step(name, work)
    os._exit(0)


if __name__ == "__main__":
    main()
