"""Re-save committed generator files with the seal (issue 35: every entry under the digest).

Run once, from the repository root, as `PYTHONPATH=. python scripts/reseal_generators.py data/pretrained/generator.pt data/ablations/*/generator.pt`;
it checks that every loaded entry (tensors byte for byte, plain values) is unchanged. A sealed file is refused.
"""
import sys, torch
from pathlib import Path
from b2b.model.checkpoint import atomic_torch_save, load_checkpoint, tensor_digest
for path in map(Path, sys.argv[1:]):
    before = torch.load(path, map_location="cpu", weights_only=True)
    assert "seal" not in before, path
    if "digest" in before:  # a digest of the tensors only (2026-12-03 to 12-06): it must hold
        assert before["digest"] == tensor_digest(before), path
        before = {k: v for k, v in before.items() if k != "digest"}
    atomic_torch_save(before, path)
    after = torch.load(path, map_location="cpu", weights_only=True)
    assert set(after) == set(before) | {"seal", "digest"}, (set(after) ^ set(before))
    def same(a, b, where=""):
        if isinstance(a, torch.Tensor):
            assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
            assert a.numpy().tobytes() == b.numpy().tobytes(), where
        elif isinstance(a, dict):
            assert list(a) == list(b), where
            for k in a: same(a[k], b[k], f"{where}/{k}")
        elif isinstance(a, (list, tuple)):
            assert type(a) == type(b) and len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b)): same(x, y, f"{where}/{i}")
        else:
            assert type(a) == type(b) and (a == b or (a != a and b != b)), (where, a, b)
    same(before, {k: after[k] for k in before})
    load_checkpoint(path)
    print(path, "resealed:", after["digest"], after["seal"])
