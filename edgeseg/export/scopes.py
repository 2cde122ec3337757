"""Which part of the student an ONNX node belongs to: backbone, pixel decoder, transformer
decoder or heads, from the torch module scope the exporter stores with every node
(``pkg.torch.onnx.name_scopes`` in the node's metadata). The profiler groups time by it, and
the INT8 recipes choose what stays float by it.
"""
from __future__ import annotations

import json
from pathlib import Path

GROUPS = ("backbone", "pixel_decoder", "transformer_decoder", "heads")
# module scopes (under the student) of each group; the heads sit inside the decoder module
_HEAD_SCOPES = ("class_embed", "mask_embed", "shape_head", "sem_head", "mask_pool")


def group_of_scope(scope: str) -> str | None:
    """The group of a torch module path such as ``model.decoder.class_embed.layers.0``."""
    parts = scope.split(".")
    if "model" in parts:
        parts = parts[parts.index("model") + 1:]
    if not parts:
        return None
    if any(p in _HEAD_SCOPES for p in parts):
        return "heads"
    return {"backbone": "backbone", "pixel_decoder": "pixel_decoder", "decoder": "transformer_decoder"}.get(parts[0])


def onnx_node_groups(onnx_path: str | Path) -> dict[str, str]:
    """ONNX node name -> group, from the module scopes the torch exporter recorded per node."""
    import onnx

    return node_groups(onnx.load(str(onnx_path), load_external_data=False))


def node_groups(model) -> dict[str, str]:
    """:func:`onnx_node_groups` of a loaded ``onnx.ModelProto``."""
    groups = {}
    for node in model.graph.node:
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = meta.get("pkg.torch.onnx.name_scopes")
        if not scopes:
            continue
        try:
            names = json.loads(scopes.replace("'", '"'))
        except ValueError:
            continue
        # the deepest scope that names a module of ours decides
        for scope in reversed(names):
            group = group_of_scope(scope)
            if group:
                # by node name and by output names: ONNX Runtime's layout pass (NCHWc) renames
                # the nodes it rewrites after their outputs
                for key in (node.name, *node.output):
                    groups.setdefault(key, group)
                break
    return groups
