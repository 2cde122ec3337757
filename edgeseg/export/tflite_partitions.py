"""Where LiteRT's XNNPACK delegate splits a ``.tflite`` graph: its partitions and the ops it leaves.

Every op XNNPACK cannot run (ARG_MAX, GATHER_ND, SELECT_V2, LESS, ...) ends a delegate
partition and runs in LiteRT's reference kernels, with a hand-over on each side. The
interpreter lists the original ops plus one ``DELEGATE`` node per partition but not which ops
each partition took, so :func:`partition_map` recovers it from the graph: a partition covers
the ops between its input and output tensors. The ops no partition covers are the ones left
out, each with the student part (backbone / pixel decoder / transformer decoder / heads) that
litert-torch's tensor names record.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from edgeseg.errors import EdgesegError
from edgeseg.export.scopes import GROUPS, group_of_scope


def scope_of_tensor(name: str) -> str:
    """The torch module path of a litert-torch tensor name.

    Names read ``pkg.Class_attr/pkg.Class_attr/...;...``; the attribute names joined by dots
    give the path (``model.decoder.layers.0``) that :func:`group_of_scope` reads."""
    parts = []
    for segment in name.split(";")[0].split("/"):
        _, sep, attr = segment.rpartition(".")[2].partition("_")
        if sep and attr:
            parts.append(attr)
    return ".".join(parts)


def _interpreter(path: Path, delegates: bool):
    try:
        from ai_edge_litert import interpreter
    except ImportError as exc:
        raise EdgesegError("the partition map needs ai-edge-litert: pip install ai-edge-litert") from exc
    kwargs = {} if delegates else {
        "experimental_op_resolver_type": interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    try:
        it = interpreter.Interpreter(model_path=str(path), num_threads=1, **kwargs)
    except ValueError as exc:
        raise EdgesegError(f"{path}: LiteRT cannot read this file as a .tflite model ({exc})") from exc
    it.allocate_tensors()
    return it


def partition_map(path: str | Path) -> dict:
    """XNNPACK partitions of ``path`` in LiteRT's default CPU setup and the ops left outside them.

    Returns ``partitions`` (count), ``ops`` (original op count), ``partition_ops`` (ops per
    partition, in graph order), ``not_delegated`` (one row per op left out: index, op, group,
    scope), ``not_delegated_by_op`` and ``not_delegated_by_group`` (counts)."""
    path = Path(path)
    if not path.is_file():
        raise EdgesegError(f"no .tflite file at {path}")
    it = _interpreter(path, delegates=True)
    nodes = it._get_ops_details()
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    ops = [n for n in nodes if n["op_name"] != "DELEGATE"]
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    producer = {int(t): op["index"] for op in ops for t in op["outputs"]}
    by_index = {op["index"]: op for op in ops}

    covered: dict[int, int] = {}  # op index -> partition number
    for number, node in enumerate(delegates):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            op_index = producer.get(stack.pop())
            if op_index is None or op_index in covered:
                continue
            covered[op_index] = number
            stack.extend(int(t) for t in by_index[op_index]["inputs"] if int(t) >= 0 and int(t) not in boundary)

    left = []
    for op in ops:
        if op["index"] in covered:
            continue
        scope = scope_of_tensor(names.get(int(op["outputs"][0]), "")) if len(op["outputs"]) else ""
        left.append({"index": op["index"], "op": op["op_name"], "group": group_of_scope(scope) or "other",
                     "scope": scope})
    sizes = Counter(covered.values())
    return {
        "file": path.name,
        "partitions": len(delegates),
        "ops": len(ops),
        "partition_ops": [sizes[i] for i in range(len(delegates))],
        "not_delegated": left,
        "not_delegated_by_op": dict(Counter(r["op"] for r in left).most_common()),
        "not_delegated_by_group": {g: n for g in (*GROUPS, "other")
                                   if (n := sum(r["group"] == g for r in left))},
    }
