"""The CLIP layer: zero-prompt equivalence with open_clip, prompt-slot semantics, loading errors."""
import pytest
import torch

import clip
from tests.helpers import TINY_RN, TINY_VIT


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return clip.load(TINY_VIT)


def full_length_text(bb, tokens):
    """The text pass over all ``context_length`` positions (``return_hidden`` keeps the full sequence)."""
    feats, _ = bb.encode_text_from_embeddings(bb.token_embedding(tokens), bb.eot_index(tokens), return_hidden=True)
    return feats


def test_zero_prompt_equivalence_with_open_clip(vit):
    tokens = vit.tokenize(["a photo of a dog.", "red circle", "x"])
    assert torch.equal(full_length_text(vit, tokens), vit.model.encode_text(tokens))
    torch.testing.assert_close(vit.encode_text(tokens), vit.model.encode_text(tokens), rtol=1e-5, atol=1e-6)
    images = torch.randn(3, 3, 32, 32)
    assert torch.equal(vit.encode_image(images), vit.model.encode_image(images))
    rn = clip.load(TINY_RN)
    assert not rn.is_vit
    assert torch.equal(rn.encode_image(images), rn.model.encode_image(images))
    assert torch.equal(full_length_text(rn, tokens), rn.model.encode_text(tokens))
    torch.testing.assert_close(rn.encode_text(tokens), rn.model.encode_text(tokens), rtol=1e-5, atol=1e-6)


def test_text_pass_stops_after_the_longest_eot(vit):
    """Under the causal mask nothing after the longest EOT reaches a pooled feature, so the pass is cut there."""
    tokens = vit.tokenize(["a photo of a dog.", "x"])
    longest = int(vit.eot_index(tokens).max())
    garbage = tokens.clone()
    garbage[:, longest + 1:] = torch.randint(1, 49000, garbage[:, longest + 1:].shape)
    assert torch.equal(full_length_text(vit, garbage), full_length_text(vit, tokens))
    assert torch.equal(vit.encode_text(garbage), vit.encode_text(tokens))
    seen = []
    hook = vit.model.transformer.resblocks[0].register_forward_hook(lambda mod, inp, out: seen.append(out.shape))
    try:
        vit.encode_text(tokens)
    finally:
        hook.remove()
    assert seen == [torch.Size([2, longest + 1, vit.text_width])]


def test_widths_come_from_the_model(vit):
    assert (vit.text_width, vit.vision_width, vit.embed_dim) == (40, 48, 32)
    assert (vit.text_layers, vit.vision_layers, vit.context_length, vit.image_size) == (3, 3, 32, 32)


def test_text_deep_prompts_replace_slots_after_sot(vit):
    tokens = vit.tokenize(["a photo of a dog."])
    emb = vit.token_embedding(tokens)
    eot = vit.eot_index(tokens)
    n = 2
    deep = [None, torch.randn(n, vit.text_width), None]
    _, hidden = vit.encode_text_from_embeddings(emb, eot, deep, return_hidden=True)
    # Recompute block 1 by hand: its input is block 0's output with positions 1..n replaced.
    m = vit.model
    x0 = hidden[0].clone()
    x0[:, 1:1 + n] = deep[1]
    out1 = m.transformer.resblocks[1](x0, attn_mask=m.attn_mask)
    assert torch.allclose(out1, hidden[1], atol=1e-6)
    # Block 2 has no prompt: it takes block 1's output unchanged.
    out2 = m.transformer.resblocks[2](hidden[1], attn_mask=m.attn_mask)
    assert torch.allclose(out2, hidden[2], atol=1e-6)


def test_vision_prompts_are_appended_and_replaced(vit):
    images = torch.randn(2, 3, 32, 32)
    n = 3
    first = torch.randn(n, vit.vision_width)
    deep = [None, None, torch.randn(n, vit.vision_width)]
    feats, hidden = vit.encode_image(images, first, deep, return_hidden=True)
    n_tokens = (32 // 8) ** 2 + 1
    assert hidden[0].shape == (2, n_tokens + n, vit.vision_width)
    v = vit.model.visual
    # The input sequence: CLS + patches + pos, then the appended prompts, then ln_pre.
    x = v.conv1(images).flatten(2).transpose(1, 2)
    x = torch.cat([v.class_embedding.view(1, 1, -1).expand(2, -1, -1), x], 1) + v.positional_embedding
    x = v.ln_pre(torch.cat([x, first.expand(2, -1, -1)], 1))
    assert torch.allclose(v.transformer.resblocks[0](x), hidden[0], atol=1e-5)
    # Layer 1 passes through (no deep prompt); layer 2 replaces the last n tokens.
    assert torch.allclose(v.transformer.resblocks[1](hidden[0]), hidden[1], atol=1e-5)
    x2 = torch.cat([hidden[1][:, :-n], deep[2].expand(2, -1, -1)], 1)
    assert torch.allclose(v.transformer.resblocks[2](x2), hidden[2], atol=1e-5)
    # Prompts are dropped before pooling: the CLS feature is what comes out.
    pooled = v.ln_post(hidden[2][:, 0]) @ v.proj
    assert torch.allclose(pooled, feats, atol=1e-5)


def test_vision_prompts_need_a_vit():
    rn = clip.load(TINY_RN)
    with pytest.raises(clip.BackboneError, match="needs a ViT"):
        rn.encode_image(torch.randn(1, 3, 32, 32), prompts=torch.randn(2, 16))


def test_backbone_is_frozen_and_stays_in_eval(vit):
    vit.train()
    assert not vit.training and not vit.model.training
    assert not any(p.requires_grad for p in vit.parameters())


def test_tokenize_matches_open_clip_and_rejects_long_text():
    import open_clip

    ref = open_clip.tokenize(["a photo of a dog."])
    assert torch.equal(clip.tokenize(["a photo of a dog."]), ref)
    with pytest.raises(ValueError, match="too long"):
        clip.tokenize(["word " * 100])
    assert clip.tokenize(["word " * 100], truncate=True)[0, -1] == ref.max()


def test_missing_weights_error_names_the_file(tmp_path, monkeypatch):
    import open_clip

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(clip.WeightsNotFoundError, match=r"ViT-B-16\.pt"):
        clip.load("ViT-B/16", cache_dir=str(tmp_path))
    with pytest.raises(clip.WeightsNotFoundError, match="Unknown backbone"):
        clip.load("NotAModel")
