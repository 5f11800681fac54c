"""toyclip: a tiny CLIP (open_clip architecture) pretrained on the toy world, shipped in the repo.

It lets the whole pipeline run without downloads or a GPU. Recipe and measured numbers:
`docs/TOY.md`; the weights come from `python -m tools.pretrain_toyclip`.

Checkpoint format (`clip/pretrained/toyclip.pt`, read with `torch.load(weights_only=True)`):
- `config`: the open_clip model config (`TOYCLIP_CONFIG` at training time);
- `state_dict`: every tensor except the token embedding, in fp16;
- `token_ids` `[N]` and `token_rows` `[N, width]` (fp16): the token-embedding rows that training
  changed, i.e. the tokens of the toy world's captions. All other rows of the `[49408, width]`
  table never received a gradient and weight decay is off for it, so they still equal their
  initialisation `token_embedding_init(seed=token_init_seed)`, which `expand_state` recomputes.
- `meta`: how the weights were made (seed, steps, time, zero-shot accuracies).

The training script rounds the stored tensors to fp16 before it evaluates, so the loaded model
is exactly the evaluated one.
"""
from __future__ import annotations

from pathlib import Path

import open_clip
import torch
from open_clip.model import CLIP
from torchvision import transforms

TOYCLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 128, "layers": 6, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 6},
}
IMAGE_SIZE = TOYCLIP_CONFIG["vision_cfg"]["image_size"]
CONTEXT_LENGTH = TOYCLIP_CONFIG["text_cfg"]["context_length"]
# CLIP's normalisation statistics (the values CoOp-family configs set as INPUT.PIXEL_MEAN/STD).
PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)

DEFAULT_PATH = Path(__file__).resolve().parent / "pretrained" / "toyclip.pt"
TOKEN_INIT_SEED = 20240
TOKEN_INIT_STD = 0.02  # open_clip's init of the token embedding
TOKEN_KEY = "token_embedding.weight"


def build_toyclip(config: dict = TOYCLIP_CONFIG) -> CLIP:
    """An untrained toyclip whose token embedding is `token_embedding_init` (the rest: open_clip's init)."""
    model = CLIP(**config)
    with torch.no_grad():
        model.token_embedding.weight.copy_(token_embedding_init(model.token_embedding.weight.shape))
    return model


def token_embedding_init(shape: tuple[int, int] | torch.Size, seed: int = TOKEN_INIT_SEED) -> torch.Tensor:
    """Deterministic initial token embedding `[vocab, width]` ~ N(0, 0.02^2), fp32."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator) * TOKEN_INIT_STD


def tokenizer() -> open_clip.tokenizer.SimpleTokenizer:
    """open_clip's CLIP BPE tokenizer with toyclip's context length."""
    return open_clip.tokenizer.SimpleTokenizer(context_length=CONTEXT_LENGTH)


def image_transform() -> transforms.Compose:
    """PIL image -> normalised `[3, 32, 32]` tensor: Dassl's test pipeline with bicubic resize and CLIP statistics."""
    return transforms.Compose(
        [
            transforms.Resize(IMAGE_SIZE, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(IMAGE_SIZE),
            transforms.ToTensor(),
            transforms.Normalize(PIXEL_MEAN, PIXEL_STD),
        ]
    )


def compact_state(model: CLIP, meta: dict | None = None, token_init_seed: int = TOKEN_INIT_SEED) -> dict:
    """The compact checkpoint of `model` (see the module docstring); `model` must use `config` == TOYCLIP_CONFIG."""
    state = model.state_dict()
    table = state.pop(TOKEN_KEY).float()
    changed = (table != token_embedding_init(table.shape, token_init_seed)).any(dim=1)
    token_ids = changed.nonzero().flatten()
    return {
        "config": TOYCLIP_CONFIG,
        "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        "token_ids": token_ids,
        "token_rows": table[token_ids].half(),
        "token_init_seed": token_init_seed,
        "meta": meta or {},
    }


def expand_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The full fp32 state dict of a compact checkpoint."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["state_dict"].items()}
    vocab = checkpoint["config"]["text_cfg"]["vocab_size"]
    width = checkpoint["config"]["text_cfg"]["width"]
    table = token_embedding_init((vocab, width), checkpoint["token_init_seed"])
    table[checkpoint["token_ids"]] = checkpoint["token_rows"].float()
    state[TOKEN_KEY] = table
    return state


def round_to_stored_precision(model: CLIP) -> None:
    """Rounds in place every tensor the compact checkpoint stores in fp16, so saving loses nothing."""
    init = token_embedding_init(model.token_embedding.weight.shape)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            rounded = tensor.data.half().float()
            if name == TOKEN_KEY:
                changed = (tensor.data != init).any(dim=1, keepdim=True)
                rounded = torch.where(changed, rounded, tensor.data)
            tensor.data.copy_(rounded)


def create_toyclip(path: str | Path | None = None) -> CLIP:
    """The pretrained toyclip: an `open_clip.model.CLIP` in eval mode, fp32, on the CPU."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"toyclip weights not found at {path}. Regenerate them (about 15 minutes on a CPU) with: "
            f"python -m tools.pretrain_toyclip --out {path}"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "token_rows" not in checkpoint:
        raise ValueError(
            f"{path} is not a toyclip checkpoint (expected the compact format of clip/toyclip.py); "
            "regenerate it with: python -m tools.pretrain_toyclip"
        )
    model = CLIP(**checkpoint["config"])
    model.load_state_dict(expand_state(checkpoint))
    return model.float().eval()
