"""A trainer written in CoOp's idiom (Dassl imports renamed to engine, nothing else) runs on this project.

The trainer below follows the structure of CoOp's ``trainers/coop.py``: ``load_clip_to_cpu`` through
``clip._MODELS``/``clip._download``/``clip.build_model``, a TextEncoder that feeds ``clip_model.transformer``
sequence-first, a PromptLearner with prefix/suffix buffers, ``update_lr()`` on the last batch and an overridden
``load_model``. The checkpoint it loads is an OpenAI-format state dict of a tiny CLIP placed where OpenAI's
``clip`` package caches weights.
"""
import os

import open_clip
import torch
import torch.nn as nn
from torch.nn import functional as F

from clip import clip
from clip.simple_tokenizer import SimpleTokenizer as _Tokenizer
from engine import TRAINER_REGISTRY, TrainerX
from engine.metrics import compute_accuracy
from engine.optim import build_lr_scheduler, build_optimizer
from engine.utils import load_checkpoint
from tests.helpers import TINY_OPTS, make_color_dataset

_tokenizer = _Tokenizer()


def load_clip_to_cpu(cfg):
    url = clip._MODELS[cfg.MODEL.BACKBONE.NAME]
    model_path = clip._download(url)
    try:
        model = torch.jit.load(model_path, map_location="cpu").eval()
        state_dict = None
    except RuntimeError:
        state_dict = torch.load(model_path, map_location="cpu")
    return clip.build_model(state_dict or model.state_dict())


class TextEncoder(nn.Module):
    def __init__(self, clip_model):
        super().__init__()
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.dtype = clip_model.dtype

    def forward(self, prompts, tokenized_prompts):
        x = prompts + self.positional_embedding.type(self.dtype)
        x = x.permute(1, 0, 2)  # NLD -> LND
        x = self.transformer(x)
        x = x.permute(1, 0, 2)  # LND -> NLD
        x = self.ln_final(x).type(self.dtype)
        return x[torch.arange(x.shape[0]), tokenized_prompts.argmax(dim=-1)] @ self.text_projection


class PromptLearner(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        n_cls, n_ctx, dtype = len(classnames), 4, clip_model.dtype
        ctx_dim = clip_model.ln_final.weight.shape[0]
        self.ctx = nn.Parameter(torch.empty(n_ctx, ctx_dim, dtype=dtype).normal_(std=0.02))
        prompt_prefix = " ".join(["X"] * n_ctx)
        self.name_lens = [len(_tokenizer.encode(name)) for name in classnames]
        prompts = [prompt_prefix + " " + name + "." for name in classnames]
        tokenized = torch.cat([clip.tokenize(p, context_length=clip_model.context_length) for p in prompts])
        with torch.no_grad():
            embedding = clip_model.token_embedding(tokenized).type(dtype)
        self.register_buffer("token_prefix", embedding[:, :1, :])
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx:, :])
        self.n_cls, self.n_ctx, self.tokenized_prompts = n_cls, n_ctx, tokenized

    def forward(self):
        ctx = self.ctx.unsqueeze(0).expand(self.n_cls, -1, -1)
        return torch.cat([self.token_prefix, ctx, self.token_suffix], dim=1)


class CustomCLIP(nn.Module):
    def __init__(self, cfg, classnames, clip_model):
        super().__init__()
        self.prompt_learner = PromptLearner(cfg, classnames, clip_model)
        self.tokenized_prompts = self.prompt_learner.tokenized_prompts
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.dtype = clip_model.dtype

    def forward(self, image):
        image_features = self.image_encoder(image.type(self.dtype))
        text_features = self.text_encoder(self.prompt_learner(), self.tokenized_prompts)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text_features = text_features / text_features.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * image_features @ text_features.t()


@TRAINER_REGISTRY.register(force=True)
class PortedCoOp(TrainerX):
    def build_model(self):
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        clip_model = load_clip_to_cpu(cfg)
        clip_model.float()  # PREC fp32
        self.model = CustomCLIP(cfg, classnames, clip_model)
        for name, param in self.model.named_parameters():
            if "prompt_learner" not in name:
                param.requires_grad_(False)
        self.model.to(self.device)
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        loss_summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return loss_summary

    def parse_batch_train(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def load_model(self, directory, epoch=None):
        for name in self.get_model_names():
            model_path = os.path.join(directory, name, f"model.pth.tar-{epoch}")
            checkpoint = load_checkpoint(model_path)
            state_dict = checkpoint["state_dict"]
            del state_dict["token_prefix"], state_dict["token_suffix"]
            self._models[name].load_state_dict(state_dict, strict=False)


def _tiny_openai_checkpoint(cache_dir):
    """A tiny CLIP saved as an OpenAI-format state dict under OpenAI's release file name."""
    torch.manual_seed(0)
    model = open_clip.model.CLIP(
        embed_dim=32, quick_gelu=True,
        vision_cfg={"image_size": 32, "layers": 2, "width": 64, "head_width": 64, "patch_size": 8},
        text_cfg={"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2})
    os.makedirs(cache_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(cache_dir, os.path.basename(clip._MODELS["ViT-B/16"])))
    return model


def test_coop_style_trainer_ports_by_imports(tmp_path, monkeypatch):
    import train

    monkeypatch.setenv("CLIP_CACHE_DIR", str(tmp_path / "cache"))
    reference = _tiny_openai_checkpoint(str(tmp_path / "cache"))
    root = str(tmp_path / "data")
    make_color_dataset(root)
    out = str(tmp_path / "run")
    argv = ["--root", root, "--output-dir", out, "--seed", "1", "--trainer", "PortedCoOp", "--backbone", "ViT-B/16",
            "DATASET.NAME", "TestColors", "OPTIM.MAX_EPOCH", "2", *TINY_OPTS]
    assert train.main(argv) == 0
    assert os.path.isfile(os.path.join(out, "results.json"))
    new = str(tmp_path / "new")
    assert train.main(["--root", root, "--output-dir", new, "--trainer", "PortedCoOp", "--backbone", "ViT-B/16",
                       "--eval-only", "--model-dir", out, "--load-epoch", "2", "DATASET.NAME", "TestColors",
                       "DATASET.SUBSAMPLE_CLASSES", "new", *TINY_OPTS]) == 0

    # The OpenAI-compatible view computes what open_clip computes (with OpenAI's fp16 weight rounding).
    open_clip.model.convert_weights_to_lp(reference, dtype=torch.float16)
    reference.float()
    view = load_clip_to_cpu(type("C", (), {"MODEL": type("M", (), {"BACKBONE": type("B", (), {
        "NAME": "ViT-B/16"})})})).float()
    tokens = clip.tokenize(["a photo of a dog."], context_length=32)
    enc = TextEncoder(view)
    with torch.no_grad():
        ours = enc(view.token_embedding(tokens), tokens)
        assert torch.allclose(ours, reference.encode_text(tokens), atol=1e-5)
