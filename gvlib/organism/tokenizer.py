"""[organism] The organism's word-level tokenizer, built locally with ``tokenizers`` (the book's organism page).

Every word of every task format is one vocabulary entry, including the verifier keywords
(``Correctness:``, ``<correct>``, ``Score:``, ``Preferred``, ``Judge:``, ``<A>`` …), so decoding
(tokens joined by single spaces) gives text that the project's verdict parsers read as written.
"""
from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from gvlib.organism.world import ATTRIBUTES, WorldConfig, entity_word

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"

_FORMAT_WORDS = (
    "|", ".", "=", "10", "sudoku", "arith", "facts", "know", "answer", "recall", "form", "bad",
    "mc", "cotb", "cots", "tour", "solution:", "Judge:", "Judgement:", "Correct", "Incorrect",
    "Correctness:", "<correct>", "<incorrect>", "Score:", "Preferred", "B:", "A", "B", "<A>", "<B>",
)


def vocabulary(world: WorldConfig) -> list[str]:
    """All words of the world's formats, specials first (ids 0–3: pad, bos, eos, unk)."""
    words = [PAD, BOS, EOS, UNK] + [str(d) for d in range(10)] + list(_FORMAT_WORDS)
    words += list(ATTRIBUTES) + [v for vals in ATTRIBUTES.values() for v in vals]
    words += [entity_word(i) for i in range(world.kb_entities)]
    if len(set(words)) != len(words):
        raise AssertionError("duplicate words in the organism vocabulary")
    return words


def build_tokenizer(world: WorldConfig) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer that prepends ``[BOS]``; EOS ends every completion."""
    vocab = {w: i for i, w in enumerate(vocabulary(world))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, padding_side="left")
