"""The XNNPACK partition map of a .tflite file: partitions, the ops left out, their student part."""
from __future__ import annotations

import pytest
import torch

from edgeseg.errors import EdgesegError
from edgeseg.export.tflite_partitions import partition_map, scope_of_tensor

litert_torch = pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")


def test_scope_of_tensor_reads_litert_torch_names():
    name = ("edgeseg.modeling.pem.ExportWrapper/edgeseg.modeling.pem.PEM_model/"
            "torch.nn.modules.linear.Linear_class_embed;other")
    assert scope_of_tensor(name) == "model.class_embed"


class _SplitByArgmax(torch.nn.Module):
    """conv -> argmax (not an XNNPACK op) -> float again -> conv: two partitions around one op."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        index = self.a(x).argmax(dim=1, keepdim=True)
        return self.b(index.float())


def test_partition_map_finds_the_op_that_splits_the_graph(tmp_path):
    path = tmp_path / "split.tflite"
    litert_torch.convert(_SplitByArgmax().eval(), (torch.randn(1, 3, 16, 16),)).export(str(path))
    found = partition_map(path)
    assert found["partitions"] >= 2 and found["not_delegated_by_op"].get("ARG_MAX") == 1
    # every op is either in a partition or listed as left out
    assert sum(found["partition_ops"]) + len(found["not_delegated"]) == found["ops"]
    with pytest.raises(EdgesegError, match="no .tflite file"):
        partition_map(tmp_path / "missing.tflite")


# Two conversions (about 3 min on 2 cores): the slow run. The default run holds the shipped
# student's TFLite export to one partition (tests/test_export.py).
@pytest.mark.slow
def test_xnnpack_rewrite_puts_the_whole_student_in_one_partition(tmp_path):
    """As trained, the student's decoder splits the graph (argmax / gather / comparisons, L2
    norms, position-table arithmetic, the transposed conv's 4-D bias); rewritten, one partition."""
    from edgeseg.export.xnnpack import prepare_for_xnnpack
    from edgeseg.modeling.build import build_model
    from edgeseg.modeling.pem import ExportWrapper
    from tests.conftest import tiny_model_config

    torch.manual_seed(0)
    wrapper = ExportWrapper(build_model(tiny_model_config())).eval()
    x = torch.randn(1, 3, 64, 64)
    found = {}
    for name, module in (("as_trained", wrapper), ("rewritten", prepare_for_xnnpack(wrapper, x))):
        path = tmp_path / f"{name}.tflite"
        litert_torch.convert(module, (x,)).export(str(path))
        found[name] = partition_map(path)
    assert found["as_trained"]["partitions"] > 3
    assert {"ARG_MAX", "GATHER_ND"} <= set(found["as_trained"]["not_delegated_by_op"])
    assert found["rewritten"]["partitions"] == 1 and found["rewritten"]["not_delegated"] == []


def test_partition_table_reads_int8_against_fp32_per_part():
    """benchmarks/tflite_partitions.py: the per-part rows of an INT8 file are read against the
    FP32 prefixes of the same thread count (the speed-up printed beside each part)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "tflite_partitions.py"
    spec = importlib.util.spec_from_file_location("tflite_partitions_script", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    parts = {"backbone_ms": 100.0, "pixel_decoder_ms": 120.0, "transformer_decoder_and_heads_ms": 50.0}
    rows = [{"model": "fp32", "threads": 1, "input": {"shape": [1, 3, 8, 8], "dtype": "float32"}, "median_ms": 270.0},
            {"model": "fp32 by part", "threads": 1, **parts},
            {"model": "int8 by part", "threads": 1, "int8_file": "q", "backbone_ms": 50.0,
             "pixel_decoder_ms": 150.0, "transformer_decoder_and_heads_ms": 50.0}]
    md = mod._markdown({"rows": rows, "partition_maps": {}, "imgsz": 8, "runs": 3, "warmup": 1,
                        "machine": {"cpu": "x", "arch": "y", "cores": 2, "isa": []}, "command": "c"})
    assert "| INT8 (q) | 1 | 50.0 (x2.00) | 150.0 (x0.80) | 50.0 (x1.00) |" in md
    assert "| FP32 (rewritten) | 1 | 100.0 | 120.0 | 50.0 |" in md
    assert "int8 by part" not in md  # summary rows are not listed as files
