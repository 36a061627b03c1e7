"""A tiny random Llama and a BPE tokenizer, built at test time (a few seconds, no download)."""
from __future__ import annotations

import os
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CORPUS = ["Judge the correctness of the following solution of the problem. Answer with either Correct "
          "or Incorrect. Problem: Solution: Judge: Correct Incorrect The answer is 42. Q: A: "
          "Correctness: <correct> <incorrect> Score: 10 Preferred solution: <A> <B>"] * 4

# The workplace's real GSM8K / NQ-open / MATH-500 files: ../shared/data next to the checkout, or
# $GVLIB_TEST_DATA (tests that need them are skipped, with this path in the reason, when absent).
DATA = Path(os.environ.get("GVLIB_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def tiny_tokenizer(vocab_size: int = 320, style: str = "bytelevel") -> PreTrainedTokenizerFast:
    """A BPE tokenizer: GPT-2/Qwen-like byte-level ("Ġword") or Llama-like metaspace ("▁word")."""
    tok = Tokenizer(models.BPE(unk_token="<unk>" if style == "metaspace" else None))
    if style == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
        alphabet = sorted(set(string.printable) - set(" \t\r\x0b\x0c"))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def tiny_model(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def save_tiny(path: Path, seed: int = 0, style: str = "bytelevel") -> Path:
    """A tiny model + tokenizer saved with save_pretrained under ``path``."""
    tok = tiny_tokenizer(style=style)
    tiny_model(len(tok), seed).save_pretrained(path)
    tok.save_pretrained(path)
    return path
