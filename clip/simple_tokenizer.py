"""``from clip.simple_tokenizer import SimpleTokenizer`` as in CoOp's vendored CLIP (open_clip's copy of it)."""
from open_clip.tokenizer import SimpleTokenizer

__all__ = ["SimpleTokenizer"]
