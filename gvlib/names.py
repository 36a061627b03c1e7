"""[vocabulary] The sets of names every layer shares, from the papermill cell down to the metric, defined once.

Each name means one idea everywhere:

* a **method** is *how* a verifier is asked (paper §3: MC, CoT-Binary, CoT-Score, Tournament);
* a **verifier** is *who* verifies: a model (the generator itself, a fixed model, a column of §4.2's
  generator × verifier grid) or the true utility (``"gold"``, §5's ablation);
* ``tau`` is a global threshold on a verifier's scores (keep s > tau) and ``quantile`` a per-prompt
  one (keep the samples above the prompt's quantile), as in :func:`gvlib.metrics.gap`;
* a **backend** is the inference engine that samples and scores.
"""
from __future__ import annotations

__all__ = ["VERIFIER_METHODS", "POINTWISE_METHODS", "METHOD_LABELS", "VERIFIERS", "BACKENDS"]

#: The paper's four verification methods (§3): multiple choice, CoT-Binary, CoT-Score, Tournament.
VERIFIER_METHODS = ("mc", "cot_binary", "cot_score", "tournament")
#: The methods that score each sample on its own (a threshold or quantile filters them); the
#: tournament ranks samples against each other instead.
POINTWISE_METHODS = ("mc", "cot_binary", "cot_score")
#: How each method is named in tables and legends (paper §3).
METHOD_LABELS = {"mc": "MC", "cot_score": "CoT-Score", "cot_binary": "CoT-Binary", "tournament": "Tournament"}
#: Who verifies the samples of the self-improvement loop (paper §5, Fig. 10): the model itself, a fixed
#: model, or the true utility.
VERIFIERS = ("self", "fixed", "gold")
#: The inference engines: "auto" picks vLLM where it can run, else transformers (:mod:`gvlib.backends`).
BACKENDS = ("auto", "transformers", "vllm")
