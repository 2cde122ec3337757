"""PEM student: backbone pyramid, shapes, inference-path equality, prototype attention, export."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from edgeseg.config import load_config
from edgeseg.modeling.backbone import Backbone
from edgeseg.modeling.complexity import count_parameters
from edgeseg.modeling.pem import ExportWrapper, build_pem
from edgeseg.modeling.position_encoding import PositionEmbeddingSine, add_position_channels_last, add_projected_position
from edgeseg.modeling.prototype_attention import PrototypeCrossAttention
from edgeseg.modeling.transformer_decoder import resize_to
from tests.conftest import tiny_model_config


@pytest.mark.parametrize("name,size", [("mobilenetv3_large_100", 64), ("mobilenetv3_small_100", 64),
                                       ("swin_tiny_patch4_window7_224", 224), ("resnet50", 64)])
def test_backbone_pyramid_is_nchw_strides_4_to_32(name, size):
    bb = Backbone(name, size).eval()
    with torch.no_grad():
        feats = bb(torch.zeros(1, 3, size, size))
    assert bb.strides == [4, 8, 16, 32]
    for f, c, s in zip(feats, bb.channels, bb.strides):
        assert tuple(f.shape) == (1, c, size // s, size // s)


def test_training_outputs_and_deep_supervision():
    cfg = tiny_model_config()
    model = build_pem(cfg).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out["pred_logits"].shape == (2, 8, 14)
    assert out["pred_masks"].shape == (2, 8, 16, 16)
    assert len(out["aux_outputs"]) == cfg.dec_layers  # learnable queries + all but the last layer
    assert all(a["pred_masks"].shape == (2, 8, 16, 16) for a in out["aux_outputs"])
    # PEM as published by default: none of edgeseg's additions; each is a switch
    assert "sem_logits" not in out and "shape_logits" not in out
    with_additions = build_pem(tiny_model_config(semantic_aux=True, mask_shape_class=True)).train()
    out = with_additions(torch.randn(2, 3, 64, 64), [torch.zeros(1, 64, 64)] * 2)
    assert out["sem_logits"].shape == (2, 13, 16, 16) and "shape_logits" in out


def test_inference_path_equals_full_resolution_path():
    torch.manual_seed(0)
    model = build_pem(tiny_model_config(image_size=128, num_queries=16)).eval()
    # make the attention masks non-trivial: random weights give mixed-sign mask logits
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        model.full_res_masks = True
        full = model(x)
        model.full_res_masks = None
        fast = model(x)
    torch.testing.assert_close(fast["pred_logits"], full["pred_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fast["pred_masks"], full["pred_masks"], atol=1e-4, rtol=1e-4)


def test_resize_commutes_with_mask_product():
    q, m = torch.randn(1, 5, 16), torch.randn(1, 16, 32, 32)
    a = resize_to(torch.einsum("bqc,bchw->bqhw", q, m), (8, 8))
    b = torch.einsum("bqc,bchw->bqhw", q, resize_to(m, (8, 8)))
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def _attention_index(attn, query, memory, mask):
    h, w = memory.shape[-2:]
    no_pos = (torch.zeros(memory.shape[1] // 2, h), torch.zeros(memory.shape[1] // 2, w))
    return attn.select(query, torch.zeros_like(query), memory, no_pos, mask)[2]


def test_prototype_selection_respects_mask_and_resets_empty_queries_per_query():
    torch.manual_seed(0)
    attn = PrototypeCrossAttention(16, nheads=2).eval()
    query, memory = torch.randn(1, 3, 16), torch.randn(1, 16, 4, 4)
    mask = torch.full((1, 3, 4, 4), -1.0)
    mask[0, 0, 1, 2] = 1.0  # query 0: only pixel 6 allowed
    mask[0, 1, 3, :] = 1.0  # query 1: pixels 12..15 allowed
    # query 2: empty mask -> reset to all pixels (per query), not pixel 0 by accident
    idx = _attention_index(attn, query, memory, mask)  # [B, heads, N]
    assert (idx[0, :, 0] == 6).all()
    assert ((idx[0, :, 1] >= 12) & (idx[0, :, 1] <= 15)).all()
    free = _attention_index(attn, query, memory, torch.ones_like(mask))
    assert torch.equal(idx[0, :, 2], free[0, :, 2])


def test_soft_prototype_selection_matches_argmax_and_the_mask_rule():
    """The delegate-friendly formulation (softmax at high temperature) picks the same pixels,
    including the per-query reset of an empty mask."""
    torch.manual_seed(0)
    attn = PrototypeCrossAttention(16, nheads=2).eval()
    query, memory = torch.randn(1, 3, 16), torch.randn(1, 16, 4, 4)
    pos = (torch.zeros(8, 4), torch.zeros(8, 4))
    mask = torch.full((1, 3, 4, 4), -1.0)
    mask[0, 0, 1, 2] = 1.0
    mask[0, 1, 3, :] = 1.0
    with torch.no_grad():
        hard = attn(query, torch.zeros_like(query), memory, pos, mask)
        attn.selection = "soft"
        soft = attn(query, torch.zeros_like(query), memory, pos, mask)
    torch.testing.assert_close(soft, hard, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mask_fill", [-1.0, -5.0, 1.0])
def test_onehot_prototype_selection_equals_argmax_and_gather(mask_fill):
    """The XNNPACK form (max, ramps, batch matmul) picks exactly the argmax pixel, keeps the
    mask rule and the per-query reset, for mostly-excluded, all-empty and all-allowed masks."""
    torch.manual_seed(0)
    attn = PrototypeCrossAttention(16, nheads=2).eval()
    query, memory = torch.randn(2, 5, 16), torch.randn(2, 16, 6, 6)
    pos = (torch.randn(8, 6), torch.randn(8, 6))
    mask = torch.full((2, 5, 6, 6), mask_fill)
    if mask_fill < 0:
        mask[0, 0, 1, 2] = 0.5  # one pixel allowed
        mask[1, 1, 3, :] = 30.0  # a row allowed
        mask[1, 2] = torch.randn(6, 6) * 100  # large logits of both signs
    with torch.no_grad():
        hard = attn(query, torch.zeros_like(query), memory, pos, mask)
        attn.selection = "onehot"
        onehot = attn(query, torch.zeros_like(query), memory, pos, mask)
    assert not torch.equal(hard, attn.norm(query))  # the update is not empty
    torch.testing.assert_close(onehot, hard, atol=1e-5, rtol=1e-5)


def test_unknown_prototype_selection_is_refused():
    attn = PrototypeCrossAttention(16, nheads=2).eval()
    attn.selection = "nearest"
    with pytest.raises(ValueError, match="prototype selection"):
        attn(torch.randn(1, 3, 16), torch.zeros(1, 3, 16), torch.randn(1, 16, 4, 4),
             (torch.zeros(8, 4), torch.zeros(8, 4)), torch.ones(1, 3, 4, 4))


def test_unit_ramp_is_clamp_for_every_magnitude():
    from edgeseg.modeling.prototype_attention import unit_ramp

    ends = torch.tensor([-1e30, -1e7, -1.0, 0.0, 1.0, 1.5, 3e7, 1e30])
    assert torch.equal(unit_ramp(ends), ends.clamp(0.0, 1.0))  # exactly 0 / 1 at any magnitude
    inside = torch.tensor([1e-7, 0.25, 0.5, 0.999])
    torch.testing.assert_close(unit_ramp(inside), inside, atol=1e-7, rtol=0)


def test_xnnpack_rewrite_keeps_outputs_and_leaves_the_reference_alone():
    from edgeseg.export.xnnpack import prepare_for_xnnpack
    from edgeseg.modeling.build import build_model
    from edgeseg.modeling.pem import ExportWrapper
    from tests.conftest import tiny_model_config

    torch.manual_seed(0)
    model = build_model(tiny_model_config())
    for m in model.modules():  # BatchNorm statistics away from identity, so the fusion matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    wrapper = ExportWrapper(model).eval()
    x = torch.randn(1, 3, 64, 64)
    rewritten = prepare_for_xnnpack(wrapper, x)
    assert all(m.selection == "argmax" for m in wrapper.modules() if isinstance(m, PrototypeCrossAttention))
    assert all(m.selection == "onehot" for m in rewritten.modules() if isinstance(m, PrototypeCrossAttention))
    ups = [b for b in rewritten.modules() if type(b).__name__ == "UpBlock"]
    assert ups and all(type(b.up).__name__ == "SubPixelUpsample" for b in ups)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for b in ups for m in b.up_act)
    with torch.no_grad():
        (ca, ma), (cb, mb) = wrapper(x), rewritten(x)
    assert ma.abs().max() > 0
    torch.testing.assert_close(cb, ca, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(mb, ma, atol=1e-3, rtol=1e-3)


def test_no_infinities_and_finite_outputs_with_all_masks_empty():
    attn = PrototypeCrossAttention(16, nheads=2).eval()
    out = attn(torch.randn(1, 3, 16), torch.zeros(1, 3, 16), torch.randn(1, 16, 4, 4),
               (torch.zeros(8, 4), torch.zeros(8, 4)), torch.full((1, 3, 4, 4), -5.0))
    assert torch.isfinite(out).all()


def test_separable_position_code_equals_the_full_map():
    """The model adds the sine code through per-row / per-column tables (no [C,H,W] constant in
    exported files); both additions must equal adding the full map."""
    pe = PositionEmbeddingSine(8)
    x = torch.randn(2, 16, 5, 7)
    full = pe(x)
    pos_y, pos_x = pe.axis_tables(5, 7)
    channels_last = add_position_channels_last(x.permute(0, 2, 3, 1), pos_y, pos_x)
    torch.testing.assert_close(channels_last, (x + full).permute(0, 2, 3, 1), rtol=0, atol=0)
    proj = torch.nn.Conv2d(16, 16, 1)
    with torch.no_grad():
        torch.testing.assert_close(add_projected_position(x, pos_y, pos_x, proj), x + proj(full), rtol=1e-5, atol=1e-5)


def test_forward_exports_without_tensor_dependent_python_branches():
    model = build_pem(tiny_model_config())
    wrapper = ExportWrapper(model)
    x = torch.randn(1, 3, 64, 64)
    exported = torch.export.export(wrapper, (x,), strict=False)
    cls, masks = exported.module()(x)
    ref = wrapper(x)
    torch.testing.assert_close(cls, ref[0])
    torch.testing.assert_close(masks, ref[1])


def test_r50_paper_config_matches_paper_parameter_count():
    cfg, _ = load_config("models/pem_r50_paper.yaml")
    model = build_pem(dataclasses.replace(cfg), 512)
    params = count_parameters(model) / 1e6
    assert abs(params / 35.6 - 1) < 0.03, params


def test_deformable_switch_runs_in_torch():
    model = build_pem(tiny_model_config(deformable=True)).train()
    out = model(torch.randn(2, 3, 64, 64))
    out["pred_masks"].sum().backward()
    names = [n for n, _ in model.named_modules() if n.endswith("offset_mask")]
    assert len(names) == 3


def test_bilinear_upsample_has_no_transposed_conv_and_resizes_the_conv_output():
    from edgeseg.modeling.pixel_decoder import UpBlock

    model = build_pem(tiny_model_config(upsample="bilinear")).eval()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in build_pem(tiny_model_config()).modules())
    block = UpBlock(8, deformable=False, learned=False).eval()
    x = torch.randn(1, 8, 5, 7)
    expected = torch.nn.functional.interpolate(block.conv(x), scale_factor=2.0, mode="bilinear", align_corners=False)
    torch.testing.assert_close(block(x), expected)
    assert block(x).shape == (1, 8, 10, 14)
    out = model(torch.randn(1, 3, 64, 64))
    assert out["pred_masks"].shape[-2:] == (16, 16)
    exported = torch.export.export(ExportWrapper(model), (torch.randn(1, 3, 64, 64),), strict=False)
    assert exported.module()(torch.zeros(1, 3, 64, 64))[1].shape == (1, model.cfg.num_queries, 16, 16)


def test_unknown_upsample_mode_names_the_config_key():
    from edgeseg.errors import ConfigError

    with pytest.raises(ConfigError, match="model.upsample"):
        tiny_model_config(upsample="nearest")


def test_backbone_blocks_prunes_stages_and_keeps_the_pyramid():
    full = Backbone("mobilenetv3_small_100", 64)
    have = [len(s) for s in full.body.blocks]
    keep = [1] * len(have)
    pruned = Backbone("mobilenetv3_small_100", 64, keep_blocks=keep)
    assert [len(s) for s in pruned.body.blocks] == keep and sum(have) > len(have)
    x = torch.randn(1, 3, 64, 64)
    assert [f.shape for f in pruned(x)] == [f.shape for f in full(x)]
    assert count_parameters(pruned) < count_parameters(full)
    model = build_pem(tiny_model_config(backbone_blocks=keep)).eval()
    assert [len(s) for s in model.backbone.body.blocks] == keep
    with pytest.raises(ValueError, match="model.backbone_blocks"):
        Backbone("mobilenetv3_small_100", 64, keep_blocks=[1, 2])
    with pytest.raises(ValueError, match="model.backbone_blocks"):
        Backbone("mobilenetv3_small_100", 64, keep_blocks=[h + 1 for h in have])


@pytest.mark.parametrize("bias", [False, True])
def test_sub_pixel_upsample_equals_the_transposed_conv(bias):
    from edgeseg.export.xnnpack import SubPixelUpsample

    torch.manual_seed(0)
    up = torch.nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 8, 5, 7)  # odd, non-square: every phase and border
    with torch.no_grad():
        torch.testing.assert_close(SubPixelUpsample(up)(x), up(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="4x4 stride-2 padding-1"):
        SubPixelUpsample(torch.nn.ConvTranspose2d(8, 6, 2, stride=2))


def test_mask_stride_8_drops_the_stride4_level_and_keeps_the_stride4_contract():
    from edgeseg.errors import ConfigError

    torch.manual_seed(0)
    model = build_pem(tiny_model_config(upsample="bilinear", mask_stride=8)).eval()
    assert len(model.pixel_decoder.up) == 2 and isinstance(model.pixel_decoder.lateral[0], torch.nn.Identity)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        levels, feats = model.pixel_decoder(model.backbone(x))
        outs, _ = model.decoder(levels, feats, full_res_masks=False)
        out = model(x)
    assert feats.shape[-2:] == (8, 8)
    expected = torch.nn.functional.interpolate(outs[-1][1], size=(16, 16), mode="bilinear", align_corners=False)
    assert out["pred_masks"].shape == (1, model.cfg.num_queries, 16, 16)
    torch.testing.assert_close(out["pred_masks"], expected)
    assert expected.std() > 0
    exported = torch.export.export(ExportWrapper(model), (x,), strict=False)
    torch.testing.assert_close(exported.module()(x)[1], out["pred_masks"])
    train_out = model.train()(torch.randn(2, 3, 64, 64))
    assert all(a["pred_masks"].shape[-2:] == (16, 16) for a in train_out["aux_outputs"])
    with pytest.raises(ConfigError, match="model.mask_stride"):
        tiny_model_config(mask_stride=16)
    with pytest.raises(ConfigError, match="model.mask_shape_class"):
        tiny_model_config(mask_stride=8, mask_shape_class=True)
