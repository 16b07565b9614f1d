"""Build the Punkt sentence-splitter parameters IFEval's checkers need, from nift-gate's own corpus.

lm-eval's IFEval checkers call nltk's `punkt_tab`, which nltk downloads on first use; offline that
fails. This trains Punkt on the embedded corpus (our own text, no licence questions) and writes the
tab files to harness/assets/nltk_data/tokenizers/punkt_tab/english/. Rerun when the corpus changes.
"""

import json
from pathlib import Path

import nltk
from nltk.tokenize.punkt import PunktTrainer, save_punkt_params

root = Path(__file__).resolve().parents[1] / "harness" / "assets"
nltk.data.path.insert(0, str(root / "nltk_data"))  # nltk only writes inside its data roots
text = "\n\n".join(json.loads(line)["text"] for file in sorted((root / "corpus").glob("*.jsonl"))
                   for line in file.read_text().splitlines() if line.strip())
trainer = PunktTrainer()
trainer.INCLUDE_ALL_COLLOCS = True
trainer.train(text, finalize=True)
target = root / "nltk_data" / "tokenizers" / "punkt_tab" / "english"
target.mkdir(parents=True, exist_ok=True)
target.chmod(0o700)
params = trainer.get_params()
# Common English abbreviations our prose rarely uses, so "Dr. Smith" is not two sentences.
params.abbrev_types.update({"dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "a.m",
                            "p.m", "u.s", "no", "fig", "approx", "inc", "ltd", "co", "jan", "feb", "aug", "sept",
                            "oct", "nov", "dec"})
written = save_punkt_params(params, dir=str(target))
print("wrote", written, sorted(p.name for p in target.iterdir()))
