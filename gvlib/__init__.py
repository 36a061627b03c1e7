"""gvlib: the library behind the book that re-runs *Mind the Gap* (Song et al., ICLR 2025), claim by claim.

One path from a notebook to a number, one implementation per stage. Each module's docstring starts with
its box in ``[brackets]``::

    notebook   a chapter's papermill parameters cell, checked by params (names: the vocabulary)
       │
    claims     the stage runner every chapter shares: models, a generator × verifier grid, the paper's
       │       filters and claim checks (iterate: the self-improvement loop on the same stages)
    engine     cached generation and verification (cache, codehash: the keys, atomic: the writes)
       │
    verifiers  the paper's four methods, MC, CoT-Binary, CoT-Score, Tournament (prompts: their texts)
       │
    backends   transformers or vLLM behind one interface
       │
    sampler/kernels   fast sampling of n completions, target-token log-probabilities
       │
    metrics    the paper's definitions: gap, relative gap, pass@k, log-linear fit, bootstrap CIs, ROC AUC,
       │       a filter's (TPR, FPR) and the gap they predict (analysis: the verification study of §6)
       │
    results    results/<chapter>.json, with the paper's values (paper_numbers) beside ours
       │
    page       build: the organism, the notebooks through papermill, the HTML (plotting: the figures)

Beside the path: tasks (problems, answers, utilities; the paper's and the organism's), organism (a family
of tiny language models trained from scratch on the CPU; report: its vital signs through claims), plan and
launch (paper scale: compute before a run, models at once on disjoint GPU sets), bench and threads (speed),
paths (disk).
"""

__version__ = "0.1.0"
